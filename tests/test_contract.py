"""The contract checks (gradcheck.contract): each blames its own report line, and only it.

One small layer, ``Scale`` (y = x * w + c, elementwise), with one switch per breach; every
breach is paired with the correct layer under the same settings.
"""

import numpy as np
import pytest

from gradcheck import check_layer
from tests.zoo import ZOO, Affine, Decoder, Embedding, EncoderDecoder, EncoderDecoderRebindsInAPart

CHECKS = [
    "grads parallel to params",
    "grads written in place",
    "grads overwritten, not accumulated",
    "arguments unmodified",
    "params unmodified",
    "dout unmodified",
    "forward deterministic",
    "stateful=False keeps no memory",
    "backward linear in dout",
    "output dtype follows params",
    "gradient shapes match inputs",
]


class Scale:
    """y = x * w + c. Params: w (D,), c (D,). forward: x (N, D) -> (N, D)."""

    def __init__(self, w, c, bug=None):
        self.params = [w, c]
        self.grads = [np.zeros_like(w), np.zeros_like(c)]
        self.param_names = ["w", "c"]
        self.bug = bug
        if bug == "grad is param":
            self.grads[1] = c
        if bug == "grad dtype":
            self.grads[1] = np.zeros(c.shape, dtype=np.float16)
        if bug in ("memory", "stateful ok"):
            self.stateful = False
            self.total = np.zeros_like(w)

    def forward(self, x):
        w, c = self.params
        self.x = x
        if self.bug == "mutate x":
            x *= 1.0000001
        if self.bug == "mutate param":
            c += 0.0  # harmless
            w[...] = w * 1.0000001
        y = x * w + c
        if self.bug == "global random":
            y = y + 1e-3 * np.random.random(y.shape)  # noqa: NPY002
        if self.bug == "memory":
            self.total = self.total + 1
            y = y + self.total
        if self.bug == "float32 buffer":
            out = np.empty(y.shape, dtype=np.float32)
            out[...] = y
            y = out
        return y

    def backward(self, dout):
        w, _ = self.params
        dw = np.sum(dout * self.x, axis=0)
        dc = dout.sum(axis=0)
        if self.bug == "rebind":
            self.grads[0] = dw
        elif self.bug == "rebind list":
            self.grads = [dw, dc]
            return dout * w
        elif self.bug == "accumulate":
            self.grads[0] += dw
        else:
            self.grads[0][...] = dw
        self.grads[1][...] = dc
        if self.bug == "nonlinear":
            dout = np.clip(dout, -0.5, 0.5)
            self.grads[1][...] = dout.sum(axis=0)
        if self.bug == "mutate dout":
            dout *= 1.0
            dout += 0.0
            dout[0] = 0.0
        if self.bug == "mutate x in backward":
            self.x[0] = 0.0
        dx = dout * w
        if self.bug == "keepdims":
            return dx[None]
        return dx


BREACHES = [
    ("grad is param", "grads parallel to params"),
    ("grad dtype", "grads parallel to params"),
    ("rebind", "grads written in place"),
    ("rebind list", "grads written in place"),
    ("accumulate", "grads overwritten, not accumulated"),
    ("mutate x", "arguments unmodified"),
    ("mutate x in backward", "arguments unmodified"),
    ("mutate param", "params unmodified"),
    ("mutate dout", "dout unmodified"),
    ("global random", "forward deterministic"),
    ("memory", "stateful=False keeps no memory"),
    ("nonlinear", "backward linear in dout"),
    ("float32 buffer", "output dtype follows params"),
    ("keepdims", "gradient shapes match inputs"),
]


#: Breaches that break a second check as a consequence, which the report rightly shows too.
CONSEQUENCES = {
    "grad is param": {"params unmodified"},  # backward writes dc into c itself
    "mutate x in backward": {"grads overwritten, not accumulated"},  # its cache changed
}


def _make(bug=None, dtype=np.float64):
    rng = np.random.default_rng(0)
    w, c = rng.standard_normal(4).astype(dtype), rng.standard_normal(4).astype(dtype)
    return Scale(w, c, bug), rng.standard_normal((3, 4)).astype(dtype)


def _entry(report, name):
    (entry,) = [e for e in report.entries if e.name == name]
    return entry


def test_every_contract_check_has_its_own_line_in_order():
    layer, x = _make()
    report = check_layer(layer, x)
    assert [e.name for e in report.contract] == CHECKS
    assert report.passed, report
    assert all(e.kind == "contract" for e in report.contract)
    assert all(f"contract: {name}: " in str(report) for name in CHECKS)


@pytest.mark.parametrize(("bug", "blame"), BREACHES, ids=[b for b, _ in BREACHES])
def test_each_breach_is_blamed_on_its_check(bug, blame):
    layer, x = _make(bug)
    report = check_layer(layer, x, dtype="strict")  # (strict: a float32 buffer is a breach)
    assert not report.passed
    entry = _entry(report, blame)
    assert entry.status == "fail", report
    assert entry.message  # says what broke and how to fix it
    others = {e.name for e in report.contract if e.status == "fail"} - {blame}
    assert others <= CONSEQUENCES.get(bug, set()), report


def test_correct_twin_of_a_stateful_false_layer_passes_the_memory_check():
    layer, x = _make("stateful ok")
    assert _entry(check_layer(layer, x), "stateful=False keeps no memory").status == "ok"


def test_memory_check_is_skipped_without_a_stateful_attribute():
    layer, x = _make()
    entry = _entry(check_layer(layer, x), "stateful=False keeps no memory")
    assert entry.status == "skipped" and entry.passed


def test_accumulating_backward_is_named_as_such():
    layer, x = _make("accumulate")
    entry = _entry(check_layer(layer, x), "grads overwritten, not accumulated")
    assert "doubled w" in entry.message and "+=" in entry.message


def test_float32_layer_that_upcasts_its_output_breaks_the_dtype_check():
    class Upcast(Scale):
        def forward(self, x):
            return super().forward(np.asarray(x, dtype=float))

    layer, x = _make(dtype=np.float32)
    assert check_layer(layer, x).passed
    rng = np.random.default_rng(0)
    w, c = rng.standard_normal(4).astype(np.float32), rng.standard_normal(4).astype(np.float32)
    entry = _entry(check_layer(Upcast(w, c), x), "output dtype follows params")
    assert entry.status == "fail" and "float32 params, output[0] is float64" in entry.message


def test_contract_checks_can_be_switched_off():
    layer, x = _make("accumulate")
    report = check_layer(layer, x, contract=False)
    assert report.contract == [] and report.passed


# --- breaches below the top level: integer inputs, parts of a composite ---------------------


def _zoo(name, cls=None):
    (bug,) = [bug for bug in ZOO if bug.name == name]
    return bug.make(cls)


def test_backward_writing_into_integer_ids_is_blamed_on_arguments_not_on_dW():
    layer, inputs = _zoo("embedding_zeroes_callers_ids")
    report = check_layer(layer, *inputs)
    entry = _entry(report, "arguments unmodified")
    assert entry.status == "fail", report
    assert "backward modified input[0] ids" in entry.message
    assert "copy them" in entry.message
    # the ids are put back before every forward, so W's gradient is judged on the caller's ids
    assert all(e.passed for e in report.gradients), report


def test_forward_writing_into_integer_ids_is_named_as_forward():
    class EmbeddingClipsIds(Embedding):
        def forward(self, ids):
            np.minimum(ids, 2, out=ids)  # modifies the caller's array
            return super().forward(ids)

    layer, inputs = _zoo("embedding_zeroes_callers_ids", EmbeddingClipsIds)
    entry = _entry(check_layer(layer, *inputs), "arguments unmodified")
    assert entry.status == "fail" and "forward modified input[0] ids" in entry.message


def test_part_rebinding_a_grad_is_named_by_its_dotted_name_and_place():
    layer, inputs = _zoo("composite_part_rebinds_grads")
    entry = _entry(check_layer(layer, *inputs), "grads written in place")
    assert entry.status == "fail"
    assert "decoder.affine.W (decoder.affine.grads[0])" in entry.message
    assert "encoder" not in entry.message and "decoder.affine.b" not in entry.message


def test_part_replacing_its_grads_list_is_named_by_its_path():
    class AffineReplacesGrads(Affine):
        def backward(self, dout):
            dx = super().backward(dout)
            self.grads = [g.copy() for g in self.grads]  # rebinds the list
            return dx

    class Replacing(EncoderDecoder):
        decoder_class = type("D", (Decoder,), {"affine_class": AffineReplacesGrads})

    layer, inputs = _zoo("composite_part_rebinds_grads", Replacing)
    entry = _entry(check_layer(layer, *inputs), "grads written in place")
    assert entry.status == "fail"
    assert "backward replaced decoder.affine.grads (the list)" in entry.message


def test_part_grads_outside_the_params_are_named_by_attribute_path():
    class WithFrozenPart(EncoderDecoder):
        """Only the encoder is trained; the decoder's grads are not in the composite's lists."""

        def __init__(self, *weights):
            super().__init__(*weights)
            self.params, self.grads = self.encoder.params, list(self.encoder.grads)
            self.param_names = ["encoder.W", "encoder.b"]

    class Buggy(WithFrozenPart):
        decoder_class = EncoderDecoderRebindsInAPart.decoder_class

    layer, inputs = _zoo("composite_part_rebinds_grads", WithFrozenPart)
    assert _entry(check_layer(layer, *inputs), "grads written in place").status == "ok"
    layer, inputs = _zoo("composite_part_rebinds_grads", Buggy)
    entry = _entry(check_layer(layer, *inputs), "grads written in place")
    assert entry.status == "fail"
    assert "grads of decoder.affine.grads[0] instead" in entry.message


# --- the checks' own backward calls get dout uncopied (gradcheck.harness.Harness.backward) ---


class PassThrough(Scale):
    """y = x * w + c whose backward hands back (a view of) dout itself as a gradient."""

    def __init__(self, w, c, later=None):
        super().__init__(w, c)
        self.later, self.backwards, self.kept = later, 0, []

    def backward(self, dout):
        super().backward(dout)
        self.backwards += 1  # (every forward restores it: counts backwards since the forward)
        if self.later == "edit dout" and self.backwards > 1:
            dout[0] = 0.0  # a second backward after one forward edits dout
        if self.later == "keep dout":
            self.kept.append(dout)  # ... and the next forward edits it
            return dout * 1.0
        return dout.reshape(dout.shape)  # a view of dout, not a copy (w = 1 below)

    def forward(self, x):
        for dout in self.kept:
            dout[...] = 0.0
        return super().forward(x)


@pytest.mark.parametrize("later", [None, "edit dout", "keep dout"])
def test_backward_returning_or_editing_dout_leaves_the_checks_own_dout_intact(later):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4))
    report = check_layer(PassThrough(np.ones(4), rng.standard_normal(4), later), x)
    linear = _entry(report, "backward linear in dout")
    assert linear.status == "ok", report  # backward(2 dout) returned 2 dout, not dout
    if later == "edit dout":  # the second backward got the dout the first one edited
        assert not report.passed
        assert _entry(report, "grads overwritten, not accumulated").status == "fail", report
        assert _entry(report, "dout unmodified").status == "ok"  # the analytic pass saw none
    else:
        assert report.passed, report


def test_same_report_for_a_given_dout_and_for_the_same_dout_drawn():
    layer, x = _make()
    drawn = check_layer(layer, x, seed=3)
    rng = np.random.default_rng(3)
    given = check_layer(layer, x, seed=3, dout=rng.standard_normal(x.shape))
    assert [e.status for e in drawn.entries] == [e.status for e in given.entries]


class AddRebindsGradToDout:
    """y = x + B; backward rebinds grads[0] to dout itself (a contract violation)."""

    def __init__(self, B):
        self.params, self.grads = [B], [np.zeros_like(B)]

    def forward(self, x):
        return x + self.params[0]

    def backward(self, dout):
        self.grads[0] = dout
        return dout.copy()


def test_grad_rebound_to_dout_is_blamed_on_grads_in_place_only():
    # the douts that later backwards share must not be the grads: backward(2 dout) would make
    # grads[0] the doubled dout and dividing it back would hide the doubling
    rng = np.random.default_rng(0)
    report = check_layer(
        AddRebindsGradToDout(rng.standard_normal((3, 4))), rng.standard_normal((3, 4))
    )
    failed = {e.name for e in report.entries if e.kind == "contract" and e.status == "fail"}
    assert failed == {"grads written in place"}, report
