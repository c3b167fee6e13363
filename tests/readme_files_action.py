"""Stand-ins for the action paths README.md's commands name (helper of tests/test_readme_commands.py,
mixed into ``readme_workspace.ReadmeFiles``): the synthetic action videos in the YOWO layout with an
ACT pickle, its ground truth as UCF101-24's ``finalAnnots.mat``, prediction files equal to that
ground truth, flow, videos and a box table, a small YOWO, YOWO's and ACT's own files (their builders
imported from tests/convert), and an ``rtsp://`` camera played by a local HTTP server.
"""

from __future__ import annotations

import http.server
import importlib.util
import shutil
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

if TYPE_CHECKING:
    from singleshot.structures import ActionAnnotations, Tube

TESTS = Path(__file__).resolve().parent


def load_test_module(relative: str) -> ModuleType:
    """A module of tests/ by its path (the tests are not a package): its builders, not its tests."""
    name = "readme_" + relative.replace("/", "_").removesuffix(".py")
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, TESTS / relative)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class ActionFiles:
    """The action factories of ``ReadmeFiles`` (which gives ``root``, ``path()`` and ``_servers``)."""

    root: Path
    _servers: list[http.server.ThreadingHTTPServer]
    _action_ann: ActionAnnotations

    def path(self, factory: str) -> str:
        raise NotImplementedError

    def action(self) -> Path:
        """Synthetic action videos (4 train, 2 test, 48x64, 12 frames) in the YOWO layout plus
        ``SynthAction-GT.pkl``."""
        from singleshot.data.action.synthetic import generate_action_dataset

        root = self.root / "ucf24"
        self._action_ann = generate_action_dataset(root, 4, 2, size=(48, 64), num_frames=(12, 12), seed=0)
        return root

    def _ann(self) -> ActionAnnotations:
        self.path("action")
        return self._action_ann

    def act_pickle(self) -> Path:
        from singleshot.data.action.synthetic import SYNTH_PICKLE

        return Path(self.path("action")) / SYNTH_PICKLE

    def action_rgb(self) -> Path:
        return Path(self.path("action")) / "rgb-images"

    def flow_rgb(self) -> Path:
        """A frames root of one action video (``rgb-images/<Class>/<video>/``): TV-L1 takes ~0.1 s a frame."""
        video = self._ann().test_videos[0]
        dst = self.root / "flow_src" / "rgb-images" / video
        shutil.copytree(Path(self.path("action_rgb")) / video, dst)
        return dst.parents[1]

    def action_flow(self) -> Path:
        """ACT flow JPEGs of the action videos, computed by ``singleshot action flow``."""
        from singleshot.cli import main

        dst = self.root / "flow"
        assert main(["action", "flow", f"src={self.path('action_rgb')}", f"dst={dst}", "workers=0"]) == 0
        return dst

    def ucf_mat(self) -> Path:
        """The action ground truth as UCF101-24's ``finalAnnots.mat`` (1-based ``x y w h`` boxes) with
        ``testlist01.txt`` beside it."""
        import scipy.io

        ann = self._ann()
        folder = self.root / "ucf101-24"
        folder.mkdir()
        annot = np.empty((1, len(ann.videos)), dtype=[("num_imgs", "O"), ("name", "O"), ("tubes", "O")])
        for i, (name, va) in enumerate(ann.videos.items()):
            tubes = np.empty((1, len(va.tubes)), dtype=[("sf", "O"), ("ef", "O"), ("class", "O"), ("boxes", "O")])
            for k, t in enumerate(va.tubes):
                b = np.asarray(t.boxes, np.float64)
                xywh = np.stack([b[:, 0] + 1, b[:, 1] + 1, b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], axis=1)
                tubes[0, k] = (
                    np.array([[int(t.frames[0])]]),
                    np.array([[int(t.frames[-1])]]),
                    np.array([[t.label + 1]]),
                    xywh.astype(np.uint16),
                )
            annot[0, i] = (np.array([[va.num_frames]]), np.array([name]), tubes)
        scipy.io.savemat(folder / "finalAnnots.mat", {"annot": annot})
        (folder / "testlist01.txt").write_text("".join(v + "\n" for v in ann.test_videos))
        return folder / "finalAnnots.mat"

    def _test_tubes(self) -> list[Tube]:
        ann = self._ann()
        return [t for v in ann.test_videos for t in ann.videos[v].tubes]

    def action_frames(self) -> Path:
        """Frame detections JSON: every test-video box of the ground truth, score 0.9."""
        from singleshot.metrics.action_files import write_frame_detections
        from singleshot.structures import FrameDets

        tubes = self._test_tubes()
        videos = sorted({t.video for t in tubes})
        rows = [
            (videos.index(t.video), f, t.label, b) for t in tubes for f, b in zip(t.frames.tolist(), t.boxes.tolist())
        ]
        dets = FrameDets(
            videos,
            [r[0] for r in rows],
            [r[1] for r in rows],
            [r[2] for r in rows],
            [0.9] * len(rows),
            [r[3] for r in rows],
        )
        path = self.root / "frames.json"
        write_frame_detections(path, dets)
        return path

    def action_tubes(self) -> Path:
        from singleshot.metrics.action_files import write_tubes
        from singleshot.structures import Tube

        path = self.root / "tubes.json"
        write_tubes(path, [Tube(t.video, t.label, t.frames, t.boxes, 0.8) for t in self._test_tubes()])
        return path

    def _video_frames(self, video: str) -> list[np.ndarray]:
        folder = Path(self.path("action")) / "rgb-images" / video
        return [np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder.glob("*.jpg"))]

    def _write_video(self, path: Path, frames: list[np.ndarray]) -> Path:
        from singleshot.io.video import VideoWriter

        writer = VideoWriter(path, 10, frames[0].shape[1], frames[0].shape[0])
        for frame in frames:
            writer.write(frame)
        writer.close()
        return path

    def video(self) -> Path:
        return self._write_video(self.root / "video.mp4", self._video_frames(self._ann().test_videos[0]))

    def action_weights(self) -> Path:
        """A ``yowo_tiny`` (random weights) for the synthetic classes, as ``action train`` saves one."""
        from singleshot.data.action.synthetic import SYNTH_ACTION_CLASSES
        from singleshot.engine.weights import save_weights
        from singleshot.tasks.action.config import ActionConfig
        from singleshot.tasks.action.predictor import action_meta, build_action_model

        cfg = ActionConfig(arch="yowo_tiny", width=4, clip_len=4, imgsz=64)
        torch.manual_seed(0)
        model, kwargs = build_action_model(cfg, len(SYNTH_ACTION_CLASSES))
        path = self.root / "action_best.safetensors"
        save_weights(path, model, action_meta(model, cfg, kwargs, list(SYNTH_ACTION_CLASSES)))
        return path

    def yowo_checkpoint(self) -> Path:
        """What YOWO's train.py saves (wrapper, ``module.`` keys), of a small 3D + 2D backbone pair."""
        convert = load_test_module("convert/test_yowo_convert.py")
        path = self.root / "yowo_ucf24_16f_best.pth"
        torch.save(convert._yowo_wrapper(convert._tiny_yowo_source(24)), path)
        return path

    def yowo_init(self) -> str:
        """A stand-in for ``action convert from=kinetics`` output (tests/tasks/test_recipes.py's)."""
        recipes = load_test_module("tasks/test_recipes.py")
        return recipes.pretrained_yowo(self.root / "yowo_init.safetensors").removeprefix("pretrained=")

    def act_caffe(self) -> Path:
        """ACT's released-model layout (K = 2 VGG16 streams) as ``deploy_RGB.prototxt`` and
        ``RGB.caffemodel`` (random blobs), written as tests/convert/test_caffe_act.py writes them."""
        from singleshot.convert.prototxt import parse_prototxt

        caffe = load_test_module("convert/test_caffe_act.py")
        folder = self.root / "act_caffe"
        folder.mkdir()
        text = caffe.act_prototxt()
        (folder / "deploy_RGB.prototxt").write_text(text)
        caffe._write(folder / "RGB.caffemodel", caffe.random_blobs(parse_prototxt(text), seed=0))
        return folder

    def act_prototxt(self) -> Path:
        return Path(self.path("act_caffe")) / "deploy_RGB.prototxt"

    def act_caffemodel(self) -> Path:
        return Path(self.path("act_caffe")) / "RGB.caffemodel"

    def box_csv(self) -> Path:
        """A per-frame box table (``video, frame, x1, y1, x2, y2, label, actor``) of the action videos."""
        ann = self._ann()
        lines = ["video,frame,x1,y1,x2,y2,label,actor"]
        for video, va in ann.videos.items():
            for k, t in enumerate(va.tubes):
                lines += [
                    f"{video.split('/')[1]},{f},{b[0]:g},{b[1]:g},{b[2]:g},{b[3]:g},{ann.classes[t.label]},a{k}"
                    for f, b in zip(t.frames.tolist(), t.boxes.tolist())
                ]
        path = self.root / "boxes.csv"
        path.write_text("\n".join(lines) + "\n")
        return path

    def csv_videos(self) -> Path:
        """One MP4 per action video, named as in the box table."""
        folder = self.root / "videos"
        for video in self._ann().videos:
            self._write_video(folder / f"{video.split('/')[1]}.mp4", self._video_frames(video))
        return folder

    def stream_url(self) -> str:
        """``http://127.0.0.1:PORT/stream.ts``: an MPEG-TS of a test video, then the connection closes."""
        data = self._write_video(self.root / "stream.ts", self._video_frames(self._ann().test_videos[1])).read_bytes()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                self.send_response(200)
                self.send_header("Content-Type", "video/mp2t")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self._servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/stream.ts"
