import threading
import time

import numpy as np
import pytest

from engine.batcher import DeadlineExceeded, LineBatcher
from engine.inference import LineText
from engine.modelpkg import ModelSpec

SPEC = ModelSpec(
    name="fake",
    classes=("", "x"),
    blank_index=0,
    input_height=16,
    input_channels=1,
    color_order="GRAY",
    norm_mean=(0.5,),
    norm_std=(0.5,),
    min_width=4,
    width_multiple=4,
    max_width=4000,
)


class FakeRecognizer:
    """Stands in for the ONNX session: records each call's widths, answers each line with its width."""

    spec = SPEC
    label = "fake@000"

    def __init__(self, fail: bool = False):
        self.calls: list[list[int]] = []
        self.fail = fail

    def recognize(self, arrays, decoder=None, hotwords=None):
        if self.fail:
            raise RuntimeError("session exploded")
        self.calls.append([a.shape[2] for a in arrays])
        return [LineText(text=str(a.shape[2]), confidence=1.0) for a in arrays]


def crop(width: int) -> np.ndarray:
    return np.full((16, width, 3), 255, np.uint8)


def test_lines_from_concurrent_requests_share_one_run():
    fake = FakeRecognizer()
    batcher = LineBatcher(lambda: fake, max_batch=32, max_wait_ms=300, max_width_ratio=10)
    results = {}

    def request(i):
        results[i] = batcher.recognize([crop(100), crop(120)], request_id=f"r{i}", timeout=10)

    threads = [threading.Thread(target=request, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(fake.calls) == 1 and len(fake.calls[0]) == 8
    batch_ids = {line.batch_id for res in results.values() for line in res}
    assert len(batch_ids) == 1
    assert results[0][0].batch_requests == 4


def test_it_flushes_at_max_batch_without_waiting_for_the_timeout():
    fake = FakeRecognizer()
    batcher = LineBatcher(lambda: fake, max_batch=4, max_wait_ms=60_000, max_width_ratio=10)
    out = batcher.recognize([crop(50)] * 4, request_id="r", timeout=5)
    assert len(out) == 4 and fake.calls == [[52] * 4]


def test_widths_are_bucketed_to_keep_padding_small():
    fake = FakeRecognizer()
    batcher = LineBatcher(lambda: fake, max_batch=32, max_wait_ms=50, max_width_ratio=1.5)
    out = batcher.recognize([crop(40), crop(800), crop(44), crop(760)], request_id="r", timeout=5)
    assert sorted(len(c) for c in fake.calls) == [2, 2]
    for widths in fake.calls:
        assert max(widths) <= 1.5 * min(widths)
    # Results come back in the order the lines were handed in.
    assert [int(r.text) for r in out] == [40, 800, 44, 760]


def test_a_failing_session_fails_its_waiters_instead_of_hanging():
    batcher = LineBatcher(lambda: FakeRecognizer(fail=True), max_wait_ms=1)
    with pytest.raises(RuntimeError, match="exploded"):
        batcher.recognize([crop(30)], request_id="r", timeout=5)


class SlowRecognizer(FakeRecognizer):
    def __init__(self, seconds: float):
        super().__init__()
        self.seconds = seconds

    def recognize(self, arrays, decoder=None, hotwords=None):
        time.sleep(self.seconds)
        return super().recognize(arrays)


def test_a_request_past_its_deadline_stops_and_its_other_lines_are_never_recognised():
    slow = SlowRecognizer(0.2)
    batcher = LineBatcher(lambda: slow, max_batch=1, max_wait_ms=1)
    with pytest.raises(DeadlineExceeded) as raised:
        batcher.recognize([crop(40)] * 20, request_id="runaway", deadline=time.monotonic() + 0.3)
    assert raised.value.total == 20 and raised.value.done < 20
    time.sleep(1.0)  # what the batching thread would still do for the request, had it not been stopped
    assert len(slow.calls) <= raised.value.done + 2 < 20
    # The batcher goes on serving other requests.
    assert [r.text for r in batcher.recognize([crop(40)], request_id="next", timeout=10)] == ["40"]


def test_lines_whose_deadline_passed_while_queued_are_dropped_before_the_recogniser():
    fake = FakeRecognizer()
    batcher = LineBatcher(lambda: fake, max_batch=8, max_wait_ms=1)
    futures = batcher.submit([crop(40)] * 3, request_id="late", deadline=time.monotonic() - 1)
    for fut in futures:
        with pytest.raises(DeadlineExceeded):
            fut.result(timeout=5)
    assert fake.calls == []


def test_the_pipeline_checks_its_deadline_before_recognising(invoice_like_image):
    from engine.pipeline import recognize_array

    fake = FakeRecognizer()
    batcher = LineBatcher(lambda: fake, max_wait_ms=1)
    with pytest.raises(DeadlineExceeded):
        recognize_array(invoice_like_image, batcher, request_id="r", deadline=time.monotonic() - 1)
    assert fake.calls == []


@pytest.fixture
def invoice_like_image() -> np.ndarray:
    from tests.conftest import render_lines

    return np.asarray(render_lines(["第一行文字", "第二行文字"]))


def test_the_batcher_defaults_are_the_settings_defaults(monkeypatch):
    """The settings are the one source of the batcher's figures: the class must not serve others."""
    import inspect
    import runpy
    from pathlib import Path

    for name in (
        "OCR_BATCH_MAX_SIZE",
        "OCR_BATCH_MAX_WAIT_MS",
        "OCR_BATCH_MAX_WIDTH_RATIO",
        "OCR_BINARIZE",
        "OCR_SHARPEN",
    ):
        monkeypatch.delenv(name, raising=False)
    base = runpy.run_path(
        str(Path(__file__).resolve().parents[2] / "ocrsite" / "settings" / "base.py"),
        run_name="ocrsite.settings.base_defaults",
    )
    params = inspect.signature(LineBatcher).parameters
    assert params["max_batch"].default == base["OCR_BATCH_MAX_SIZE"]
    assert params["max_wait_ms"].default == base["OCR_BATCH_MAX_WAIT_MS"]
    assert params["max_width_ratio"].default == base["OCR_BATCH_MAX_WIDTH_RATIO"]
    assert params["binarize"].default == base["OCR_BINARIZE"]
    assert params["sharpen"].default == base["OCR_SHARPEN"]


class MeetingRecognizer(FakeRecognizer):
    """Each call waits until ``parties`` calls are inside at once: only concurrent calls finish."""

    def __init__(self, parties: int):
        super().__init__()
        self.barrier = threading.Barrier(parties, timeout=10)
        self.threads: set[str] = set()

    def recognize(self, arrays, decoder=None, hotwords=None):
        self.threads.add(threading.current_thread().name)
        self.barrier.wait()
        return super().recognize(arrays)


def test_with_batching_off_requests_run_side_by_side_in_their_own_threads():
    meeting = MeetingRecognizer(parties=2)
    batcher = LineBatcher(lambda: meeting, max_batch=1)
    answers: dict[str, list[str]] = {}

    def request(name: str, width: int) -> None:
        answers[name] = [r.text for r in batcher.recognize([crop(width)], request_id=name, timeout=20)]

    threads = [
        threading.Thread(target=request, args=(f"task-{i}", w), name=f"task-{i}") for i, w in enumerate((40, 80))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert answers == {"task-0": ["40"], "task-1": ["80"]}
    assert meeting.threads == {"task-0", "task-1"}  # not the batching thread
    assert not meeting.barrier.broken


def test_with_batching_off_each_line_is_its_own_call_in_order_and_the_deadline_holds():
    fake = FakeRecognizer()
    batcher = LineBatcher(lambda: fake, max_batch=1)
    out = batcher.recognize([crop(40), crop(800), crop(44)], request_id="r", timeout=10)
    assert [r.text for r in out] == ["40", "800", "44"] and all(r.batch_size == 1 for r in out)
    assert fake.calls == [[40], [800], [44]]
    with pytest.raises(DeadlineExceeded) as raised:
        batcher.recognize([crop(40)] * 3, request_id="late", deadline=time.monotonic() - 1)
    assert raised.value.done == 0 and raised.value.total == 3 and len(fake.calls) == 3


def test_the_served_pipeline_outside_a_worker_has_the_settings_defaults(monkeypatch):
    """engine.served builds what a worker builds with the default settings (benchmarks, the page
    suite's scoring and the OCRmyPDF plugin read through it)."""
    import runpy
    from pathlib import Path

    from engine import served

    for name in ("OCR_DECODER", "OCR_LM_ALPHA", "OCR_LM_BETA", "OCR_BEAM_WIDTH", "OCR_BEAM_DOUBT", "OCR_LM_MODEL"):
        monkeypatch.delenv(name, raising=False)
    for name in ("OCR_CASCADE_BELOW", "OCR_MODEL_PATH", "OCR_MODELS_DIR"):
        monkeypatch.delenv(name, raising=False)
    base = runpy.run_path(
        str(Path(__file__).resolve().parents[2] / "ocrsite" / "settings" / "base.py"),
        run_name="ocrsite.settings.base_defaults",
    )
    config = served.DECODER
    assert (config.mode, config.doubt) == (base["OCR_DECODER"], base["OCR_BEAM_DOUBT"])
    assert (config.beam.alpha, config.beam.beta, config.beam.width) == (
        base["OCR_LM_ALPHA"],
        base["OCR_LM_BETA"],
        base["OCR_BEAM_WIDTH"],
    )
    assert served.CASCADE_BELOW == base["OCR_CASCADE_BELOW"]
    assert Path(base["OCR_LM_MODEL"]) == Path(base["OCR_MODELS_DIR"]) / served.LM_FILE
