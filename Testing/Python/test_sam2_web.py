"""The browser annotator with a SAM 2 model: loading it in the Segment Anything panel enables strategy sam2."""
from MVAWebLib.tool_controllers import SamOptions, WebSamEngines
from SegmentAnythingLib.algorithms.sam2_engine import Sam2Engine
from SmartPropagationLib.algorithms import sam2_video


def test_loading_a_sam2_model_in_the_browser_registers_strategy_sam2_and_keeps_the_engine(monkeypatch):
    monkeypatch.setattr(sam2_video, "_VIDEO_STRATEGIES", {})
    engines = WebSamEngines(SamOptions(model="sam2_tiny", input_size="512"))
    engine = engines.load()
    assert isinstance(engine, Sam2Engine) and sam2_video.video_strategies() == ("sam2",)
    assert engines.loaded() is engine  # the encoder-input choice does not apply to SAM 2: no reload per click
    engines.options.model = "tiny"
    assert engines.loaded() is None
