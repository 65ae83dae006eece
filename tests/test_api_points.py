"""Small API points a learner meets: celib.gradcheck called, torch_ops without torch, torch
tensors given to the NumPy functions, weight as the third positional argument."""

import subprocess
import sys

import numpy as np
import pytest
from book_helpers import ROOT

import celib


def test_gradient_check_is_the_module_and_gradcheck_an_alias_that_explains_a_call():
    assert celib.gradient_check.numerical_grad is celib.numerical_grad
    assert celib.gradcheck.compare is celib.compare  # older code keeps working
    with pytest.raises(TypeError, match="module.*not a function.*celib.numerical_grad"):
        celib.gradcheck(lambda x: x, np.zeros(2))


def test_torch_ops_without_torch_says_to_install_the_extra():
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import celib\n"
        "try:\n"
        "    import celib.torch_ops\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert "pip install 'celib[torch]'" in out.stdout, out.stdout + out.stderr


def test_weight_is_the_third_positional_argument_as_in_torch():
    x = np.array([[2.0, 1.0, 0.1], [0.3, -1.0, 2.0]])
    y = np.array([0, 2])
    w = np.array([1.0, 2.0, 0.5])
    assert celib.cross_entropy(x, y, w) == celib.cross_entropy(x, y, weight=w)
    assert np.array_equal(
        celib.cross_entropy_grad(x, y, w), celib.cross_entropy_grad(x, y, weight=w)
    )
    loss, grad = celib.cross_entropy_and_grad(x, y, w)
    assert loss == celib.cross_entropy(x, y, weight=w)
    with pytest.raises(TypeError):
        celib.cross_entropy(x, y, w, -100)  # the options after weight stay keyword-only


def test_torch_tensors_are_converted_or_refused_with_celibs_message():
    torch = pytest.importorskip("torch")
    x = torch.tensor([[2.0, 1.0, 0.1]], dtype=torch.float64)
    y = torch.tensor([0])
    assert celib.cross_entropy(x, y) == celib.cross_entropy(x.numpy(), y.numpy())
    assert np.allclose(
        celib.softmax(x.to(torch.bfloat16)), celib.softmax(x.float().numpy()), atol=1e-2
    )
    with pytest.raises(
        TypeError,
        match=r"logits is a torch tensor that requires grad.*"
        r"logits\.detach\(\)\.cpu\(\)\.numpy\(\)",
    ):
        celib.cross_entropy(x.clone().requires_grad_(), y)
    with pytest.raises(TypeError, match="x is a torch tensor that requires grad"):
        celib.softmax(x.clone().requires_grad_())
