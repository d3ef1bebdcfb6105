"""itryon demo: the Gradio page driven through gradio_client in this process, and (slow) seen in headless Chromium."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from inference_helpers import tiny_run

from itryon.cli.demo import TryOnDemo, build_demo, parse_actions
from itryon.data.synthetic import SyntheticTryOnDataset
from itryon.data.video_io import read_video, to_frames, write_playable_video

gr = pytest.importorskip("gradio", reason="the demo tests need Gradio (pip install -e '.[demo]')")
gradio_client = pytest.importorskip("gradio_client", reason="the demo tests need gradio_client")


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory):
    from preprocess_helpers import BoxSegmenter, FixedHands, FixedPose

    from itryon.inference.export import pipeline_from_run

    root = tmp_path_factory.mktemp("demo")
    pipe = pipeline_from_run(tiny_run(root / "run"))
    estimators = {"segmenter": BoxSegmenter(), "pose": FixedPose(), "hands": FixedHands()}
    app = build_demo(TryOnDemo(pipe, estimators, max_frames=9, out_dir=root / "out"))
    app.launch(prevent_thread_lock=True, server_port=None, quiet=True, show_error=True)
    yield app, root
    app.close()


def person_inputs(root: Path) -> tuple[Path, Path]:
    from PIL import Image

    clip = SyntheticTryOnDataset(split="val", num_clips=1, seed=1, num_frames=9)[0]
    video = write_playable_video(root / "person.mp4", to_frames(clip["video"]), fps=8)
    garment = root / "garment.png"
    Image.fromarray(to_frames(clip["garment"][:, None])[0].numpy()).save(garment)
    return video, garment


def test_parse_actions_in_frames_and_seconds() -> None:
    assert parse_actions("2-6: lifts the hem\n\n1s-2s: pulls", fps=4, num_frames=9) == [
        {"start": 2, "end": 6, "text": "lifts the hem"},
        {"start": 4, "end": 8, "text": "pulls"},
    ]
    with pytest.raises(ValueError, match="action line 1 'lifts': write START-END: text"):
        parse_actions("lifts", fps=4, num_frames=9)


def test_the_page_answers_through_gradio_client(page) -> None:
    app, root = page
    video, garment = person_inputs(root)
    client = gradio_client.Client(app.local_url, verbose=False)
    side, result = client.predict(
        gradio_client.handle_file(str(video)),
        gradio_client.handle_file(str(garment)),
        "a person in a t-shirt",
        "2-6: lifts the hem",
        1,
        "euler",
        0,
        1.0,
        2.0,
        1.0,
        api_name="/tryon",
    )
    side = read_video(side["video"] if isinstance(side, dict) else side)
    result = read_video(result["video"] if isinstance(result, dict) else result)
    assert tuple(result.shape) == (9, 48, 64, 3)
    assert tuple(side.shape) == (9, 48, 3 * 64, 3)  # source | hand prior | result
    source = read_video(video)
    assert np.abs(side[:, :, :64].int().numpy() - source.int().numpy()).mean() < 8  # the source panel, after H.264


@pytest.mark.slow
def test_headless_chromium_shows_the_page(page, tmp_path: Path) -> None:
    playwright = pytest.importorskip("playwright.sync_api", reason="the screenshot test needs playwright")
    browser_path = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser_path is None:
        pytest.skip("no Chromium on this machine (apt install chromium, or python -m playwright install chromium)")
    app, _ = page
    shot = tmp_path / "page.png"
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
        tab = browser.new_page(viewport={"width": 1200, "height": 900})
        tab.goto(app.local_url)
        tab.get_by_text("Try on").first.wait_for(timeout=60_000)
        assert tab.get_by_text("iTryOn: interactive video try-on").count() >= 1
        tab.screenshot(path=str(shot), full_page=True)
        browser.close()
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape[0] >= 900 and pixels.shape[1] == 1200
    assert pixels.std() > 10  # a drawn page, not a blank one
