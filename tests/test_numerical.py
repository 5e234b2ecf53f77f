"""gradcheck.numerical: central differences of a scalar function of one array, in place."""

import numpy as np
import pytest

from gradcheck.numerical import directional_derivative, numerical_gradient, uniform_direction


def test_gradient_of_a_cubic_matches_the_derivative_to_rounding():
    x = np.array([[1.0, -2.0], [0.5, 3.0]])
    d = numerical_gradient(lambda: float(np.sum(x**3)), x)
    np.testing.assert_allclose(d.central, (3 * x**2).ravel(), rtol=1e-9)
    np.testing.assert_allclose(d.left, d.right, rtol=1e-4)
    assert d.evaluations == 1 + 2 * x.size  # f0, then two per element


def test_x_is_restored_bit_for_bit_even_when_f_raises():
    x = np.array([0.1, 0.2, 0.3])
    before = x.copy()
    numerical_gradient(lambda: float(np.sum(np.sin(x))), x)
    assert np.array_equal(x, before)
    calls = []

    def f():
        calls.append(1)
        if len(calls) > 2:
            raise KeyboardInterrupt
        return float(x.sum())

    with pytest.raises(KeyboardInterrupt):
        numerical_gradient(f, x, f0=0.0)
    assert np.array_equal(x, before)


def test_selected_indices_only_and_zero_dim_arrays():
    x = np.arange(6.0).reshape(2, 3)
    d = numerical_gradient(lambda: float(np.sum(x**2)), x, indices=np.array([4, 1]), f0=55.0)
    np.testing.assert_allclose(d.central, [8.0, 2.0], rtol=1e-8)
    assert list(d.indices) == [4, 1] and d.evaluations == 4
    s = np.array(2.0)
    assert numerical_gradient(lambda: float(s**2), s).central[0] == pytest.approx(4.0)


def test_non_contiguous_arrays_are_perturbed_through_their_own_view():
    base = np.arange(12.0).reshape(3, 4)
    x = base.T  # not C-contiguous
    d = numerical_gradient(lambda: float(np.sum(x * base.T)), x)  # f = sum(x**2)
    np.testing.assert_allclose(d.central.reshape(x.shape), 2 * x, rtol=1e-7)


def test_kink_shows_as_disagreeing_one_sided_slopes():
    x = np.array([0.0, 1.0])
    d = numerical_gradient(lambda: float(np.sum(np.abs(x))), x)
    assert d.left[0] == pytest.approx(-1) and d.right[0] == pytest.approx(1)
    assert d.central[0] == pytest.approx(0, abs=1e-9)
    assert d.left[1] == pytest.approx(d.right[1])


def test_directional_derivative_is_grad_dot_v():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4))
    vs = rng.standard_normal((2, 3, 4))
    d = directional_derivative(lambda: float(np.sum(np.tanh(x))), x, vs.copy())
    g = 1 - np.tanh(x) ** 2
    np.testing.assert_allclose(d.central, [np.vdot(g, v) for v in vs], rtol=1e-8)
    assert d.evaluations == 1 + 4


def test_directional_derivative_takes_a_generator_and_restores_x():
    x = np.array([1.0, 2.0])
    before = x.copy()
    d = directional_derivative(lambda: float(x @ x), x, (np.ones(2) for _ in range(3)), f0=5.0)
    np.testing.assert_allclose(d.central, [6.0] * 3, rtol=1e-8)
    assert np.array_equal(x, before)


@pytest.mark.parametrize("fn", [numerical_gradient, directional_derivative])
def test_bad_arguments(fn):
    x32 = np.ones(2, dtype=np.float32)
    args = (np.ones((1, 2)),) if fn is directional_derivative else ()
    with pytest.raises(TypeError, match="float64"):
        fn(lambda: 0.0, x32, *args)
    with pytest.raises(ValueError, match="eps=0 must be > 0; try eps=1e-6"):
        fn(lambda: 0.0, np.ones(2), *args, eps=0)


def test_uniform_direction_is_reproducible_float32_in_range_and_seed_dependent():
    a = uniform_direction(7, (3, 50))
    assert a.dtype == np.float32 and a.shape == (3, 50)
    assert np.array_equal(a, uniform_direction(7, (3, 50)))
    assert not np.array_equal(a, uniform_direction(8, (3, 50)))
    assert a.min() >= -1 and a.max() < 1
    big = uniform_direction(2**63 + 5, 100_000)  # seeds up to 2**64 (drawn as 63-bit ints)
    assert abs(float(big.mean())) < 0.01 and 0.32 < float(big.var()) < 0.35  # var 1/3


def test_directional_derivative_moves_several_arrays_together():
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal(3), rng.standard_normal((2, 2))
    before = (x.copy(), y.copy())
    v = [rng.standard_normal(3), rng.standard_normal((2, 2)).astype(np.float32)]
    d = directional_derivative(lambda: float(np.sum(x**2) * np.sum(np.sin(y))), [x, y], [v])
    expect = np.vdot(2 * x * np.sum(np.sin(y)), v[0]) + np.vdot(np.sum(x**2) * np.cos(y), v[1])
    assert d.central[0] == pytest.approx(expect, rel=1e-7)
    assert np.array_equal(x, before[0]) and np.array_equal(y, before[1])
    with pytest.raises(ValueError, match="must be float arrays of the shapes of x"):
        directional_derivative(lambda: 0.0, [x, y], [[v[0]]])


def test_uniform_direction_takes_a_numpy_integer_size():
    assert np.array_equal(uniform_direction(1, np.int64(5)), uniform_direction(1, (5,)))
