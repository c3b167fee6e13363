"""Small real files standing in for the paths README.md's commands name (helper of
tests/test_readme_commands.py).

:class:`ReadmeFiles` builds each file the first time a command asks for it, under one folder:
datasets in the real on-disk formats (the project's synthetic generators: shapes VOC, the action
videos in the YOWO layout with an ACT pickle, Cornell depth scenes), prediction files derived from
their ground truth, weights of small models saved by the project's own writers, and the weights of
other projects as the tests of ``tests/convert`` write them (torchvision, ssd.pytorch, YOWO, ACT's
Caffe files; their builders are imported from those test files). An ``rtsp://`` camera becomes a
local HTTP server that sends an MPEG-TS video and closes.
"""

from __future__ import annotations

import http.server
import importlib.util
import json
import shutil
import sys
import threading
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
from PIL import Image

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent


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


def _random_state(shapes: dict[str, torch.Tensor], seed: int = 0) -> dict[str, torch.Tensor]:
    """Small random float tensors (integer buffers zero) of the shapes of a state dict built on the
    meta device: another project's file without the cost of its initialisers."""
    gen = torch.Generator().manual_seed(seed)
    return {
        k: torch.randn(v.shape, generator=gen) * 0.02 if v.is_floating_point() else torch.zeros(v.shape, dtype=v.dtype)
        for k, v in shapes.items()
    }


class ReadmeFiles:
    """The stand-in files, built on first use under ``root``; :meth:`path` by factory name."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._built: dict[str, Path | str] = {}
        self._servers: list[http.server.ThreadingHTTPServer] = []
        self._outputs = 0

    def path(self, factory: str) -> str:
        if factory not in self._built:
            self._built[factory] = getattr(self, factory)()
        return str(self._built[factory])

    def output(self, name: str) -> str:
        """A fresh, not yet existing output path ending in ``name``'s last part."""
        self._outputs += 1
        return str(self.root / "outputs" / str(self._outputs) / Path(name).name)

    def close(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()

    # ------------------------------------------------------------------ detect
    def voc(self) -> Path:
        """A VOCdevkit of shapes images: VOC2007 and VOC2012 with train/val and trainval/test lists."""
        from singleshot.data.shapes import write_shapes_dataset

        root = self.root / "VOCdevkit"
        root.mkdir()
        for year, seed in (("VOC2007", 0), ("VOC2012", 1)):
            tmp = write_shapes_dataset(self.root / f"shapes_{year}", n_train=3, n_val=2, size=64, seed=seed)
            voc = (tmp / "VOC2007").rename(root / year)
            prefix = "" if year == "VOC2007" else "2012_"  # ids unique over the two years, as in VOC
            for xml in sorted((voc / "Annotations").glob("*.xml")):
                stem = xml.stem
                text = xml.read_text().replace(f"<filename>{stem}.jpg<", f"<filename>{prefix}{stem}.jpg<")
                xml.unlink()
                (voc / "Annotations" / f"{prefix}{stem}.xml").write_text(text)
                (voc / "JPEGImages" / f"{stem}.jpg").rename(voc / "JPEGImages" / f"{prefix}{stem}.jpg")
            main = voc / "ImageSets" / "Main"
            for split, copy in (("train", "trainval"), ("val", "test")):
                ids = "".join(f"{prefix}{i}\n" for i in (main / f"{split}.txt").read_text().split())
                (main / f"{split}.txt").write_text(ids)
                (main / f"{copy}.txt").write_text(ids)
        return root

    def image(self) -> Path:
        return Path(self.path("voc")) / "VOC2007" / "JPEGImages" / "000001.jpg"

    def image_folder(self) -> Path:
        return Path(self.path("voc")) / "VOC2007" / "JPEGImages"

    def voc_results(self) -> Path:
        """Devkit results (``comp4_det_test_<class>.txt``, 1-based pixels) equal to VOC2007's test boxes."""
        import xml.etree.ElementTree as ET

        from singleshot.data.shapes import SHAPES_CLASSES

        voc = Path(self.path("voc")) / "VOC2007"
        lines: dict[str, list[str]] = {c: [] for c in SHAPES_CLASSES}
        for image_id in (voc / "ImageSets" / "Main" / "test.txt").read_text().split():
            for obj in ET.parse(voc / "Annotations" / f"{image_id}.xml").getroot().iter("object"):
                box = [obj.findtext(f"bndbox/{k}") for k in ("xmin", "ymin", "xmax", "ymax")]
                lines[obj.findtext("name") or ""].append(f"{image_id} 0.9 {' '.join(str(b) for b in box)}")
        folder = self.root / "results_dir"
        folder.mkdir()
        for name, rows in lines.items():  # the classes that have test boxes
            if rows:
                (folder / f"comp4_det_test_{name}.txt").write_text("".join(r + "\n" for r in rows))
        return folder

    def coco_gt(self) -> Path:
        images = [{"id": i, "file_name": f"{i:012d}.jpg", "width": 64, "height": 48} for i in (1, 2)]
        boxes = [(1, [4, 6, 20, 18]), (1, [30, 10, 12, 30]), (2, [10, 8, 40, 30])]
        anns = [
            {"id": k + 1, "image_id": i, "category_id": 1, "bbox": b, "area": b[2] * b[3], "iscrowd": 0}
            for k, (i, b) in enumerate(boxes)
        ]
        path = self.root / "instances_val2017.json"
        path.write_text(
            json.dumps({"images": images, "annotations": anns, "categories": [{"id": 1, "name": "person"}]})
        )
        return path

    def coco_results(self) -> Path:
        gt = json.loads(Path(self.path("coco_gt")).read_text())
        results = [
            {"image_id": a["image_id"], "category_id": 1, "bbox": a["bbox"], "score": 0.9} for a in gt["annotations"]
        ]
        path = self.root / "results.json"
        path.write_text(json.dumps(results))
        return path

    def ssd_weights(self) -> Path:
        """An ``ssd_tiny`` (random weights) for the shapes classes, as ``detect train`` saves one."""
        from singleshot.data.shapes import SHAPES_CLASSES
        from singleshot.engine.weights import save_weights
        from singleshot.models import create_model
        from singleshot.tasks.detect.predictor import model_meta

        torch.manual_seed(0)
        model = create_model("ssd_tiny", len(SHAPES_CLASSES), image_size=160)
        path = self.root / "detect_best.safetensors"
        save_weights(path, model, model_meta(model, "ssd_tiny", {"image_size": 160}, sorted(SHAPES_CLASSES)))
        return path

    def yolo_yaml(self) -> str:
        from singleshot.data.detect_convert import convert_dataset

        return str(convert_dataset("voc", self.path("voc"), "yolo", self.root / "yolo")["data"])

    def torchvision_ssd(self) -> Path:
        """A torchvision ``ssd300_vgg16`` state dict (COCO's 91 logits), random values."""
        import torchvision

        with torch.device("meta"):
            model = torchvision.models.detection.ssd300_vgg16(weights=None, weights_backbone=None, num_classes=91)
        path = self.root / "ssd300_vgg16_coco.pth"
        torch.save(_random_state(model.state_dict()), path)
        return path

    def ssd_pytorch(self) -> Path:
        path = self.root / "ssd300_mAP_77.43_v2.pth"
        torch.save(load_test_module("convert/test_ssd_pytorch.py").ssd_pytorch_state_dict(), path)
        return path

    def vgg16(self) -> Path:
        """A torchvision ``vgg16`` state dict (ImageNet classifier included), zeros: a trunk file."""
        import torchvision

        with torch.device("meta"):
            model = torchvision.models.vgg16(weights=None)
        path = self.root / "vgg16.pth"
        torch.save({k: torch.zeros(v.shape, dtype=v.dtype) for k, v in model.state_dict().items()}, path)
        return path

    # ------------------------------------------------------------------ action
    def action(self) -> Path:
        """Synthetic action videos (4 train, 2 test, 48x64, 12 frames) in the YOWO layout plus
        ``SynthAction-GT.pkl``."""
        from singleshot.data.action.synthetic import generate_action_dataset

        root = self.root / "ucf24"
        self._action_ann = generate_action_dataset(root, 4, 2, size=(48, 64), num_frames=(12, 12), seed=0)
        return root

    def _ann(self):  # noqa: ANN202 - ActionAnnotations
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

    def _test_tubes(self) -> list:
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
        return (
            load_test_module("tasks/test_recipes.py")
            .pretrained_yowo(self.root / "yowo_init.safetensors")
            .split("=", 1)[1]
        )

    def _act_caffe(self) -> tuple[Path, Path]:
        caffe = load_test_module("convert/test_caffe_act.py")
        from singleshot.convert.prototxt import parse_prototxt

        text = caffe.act_prototxt()
        prototxt = self.root / "deploy_RGB.prototxt"
        prototxt.write_text(text)
        return prototxt, caffe._write(self.root / "RGB.caffemodel", caffe.random_blobs(parse_prototxt(text), seed=0))

    def act_prototxt(self) -> Path:
        prototxt, model = self._act_caffe()
        self._built["act_caffemodel"] = model
        return prototxt

    def act_caffemodel(self) -> Path:
        return Path(self.path("act_prototxt")).with_name("RGB.caffemodel")

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

    # ------------------------------------------------------------------ grasp
    def cornell(self) -> Path:
        """Six synthetic Cornell scenes at Cornell's 480x640 (``01/pcd0100d.tiff``, ``r.png``, ``cpos.txt``...)."""
        from singleshot.data.grasp.synthetic import generate_grasp_dataset

        root = self.root / "cornell"
        generate_grasp_dataset(root, num_images=6, seed=0, size=(480, 640))
        return root

    def cornell_depth(self) -> Path:
        return Path(self.path("cornell")) / "01" / "pcd0100d.tiff"

    def cornell_rgb(self) -> Path:
        return Path(self.path("cornell")) / "01" / "pcd0100r.png"

    def cornell_clouds(self) -> Path:
        """A Cornell folder holding a point cloud ``pcd0100.txt`` (PCD ascii, ``index`` = row * 640 + col)."""
        folder = self.root / "cornell_clouds" / "01"
        folder.mkdir(parents=True)
        header = "VERSION .7\nFIELDS x y z rgb index\nSIZE 4 4 4 4 4\nTYPE F F F F U\nCOUNT 1 1 1 1 1\nDATA ascii\n"
        pts = [(300.0, 400.0, 600.0, 640 * 200 + 300), (0.0, 0.0, 700.0, 640 * 479 + 639), (5.0, 5.0, 650.0, 0)]
        (folder / "pcd0100.txt").write_text(header + "".join(f"{x} {y} {z} 0 {i}\n" for x, y, z, i in pts))
        return folder.parent

    def grasp_weights(self) -> Path:
        """A GG-CNN (random weights) on 120x120 depth crops, as ``grasp train`` saves one."""
        from singleshot.engine.weights import save_weights
        from singleshot.models.ggcnn import ggcnn
        from singleshot.tasks.grasp.config import GraspConfig
        from singleshot.tasks.grasp.predictor import model_meta

        torch.manual_seed(0)
        path = self.root / "grasp_best.safetensors"
        save_weights(path, ggcnn(1).eval(), model_meta(GraspConfig(size=120, crop_size=240)))
        return path

    def grasp_preds(self) -> Path:
        """Grasp predictions JSON: each image's first positive rectangle, quality 0.9."""
        from singleshot.data.grasp.cornell import read_cornell_rectangles
        from singleshot.data.grasp.rects import corners_to_grasps

        rows = []
        for pos in sorted(Path(self.path("cornell")).glob("*/pcd*cpos.txt")):
            g = [float(v) for v in corners_to_grasps(read_cornell_rectangles(pos))[0]]
            rows.append({"image": pos.name.removesuffix("cpos.txt"), "grasps": [g + [0.9]]})
        path = self.root / "grasps.json"
        path.write_text(json.dumps(rows))
        return path


#: README value -> factory of :class:`ReadmeFiles` (``task:value`` first, then ``value``). A path
#: README shows that is in neither form fails the test: add its stand-in here.
PLACEHOLDERS: dict[str, str] = {
    "path/to/VOCdevkit": "voc",
    "VOCdevkit": "voc",
    "/data/VOCdevkit": "voc",
    "image.jpg": "image",
    "folder": "image_folder",
    "video.mp4": "video",
    "results_dir": "voc_results",
    "instances_val2017.json": "coco_gt",
    "results.json": "coco_results",
    "detect:best.safetensors": "ssd_weights",
    "detect:runs/detect/train/best.safetensors": "ssd_weights",
    "ssd300_vgg16_coco-b556d3b4.pth": "torchvision_ssd",
    "ssd300_mAP_77.43_v2.pth": "ssd_pytorch",
    "path/to/data.yaml": "yolo_yaml",
    "vgg16.pth": "vgg16",
    "path/to/ucf24": "action",
    "path/to/jhmdb": "action",
    "yowo_root": "action",
    "UCF101v2-GT.pkl": "act_pickle",
    "finalAnnots.mat": "ucf_mat",
    "frames.json": "action_frames",
    "tubes.json": "action_tubes",
    "action:best.safetensors": "action_weights",
    "yowo_ucf24_16f_best.pth": "yowo_checkpoint",
    "yowo_jhmdb_init.safetensors": "yowo_init",
    "deploy_RGB.prototxt": "act_prototxt",
    "RGB.caffemodel": "act_caffemodel",
    "path/to/ucf24/rgb-images": "action_rgb",
    "path/to/ucf24/flow": "action_flow",
    "rtsp://camera.local/stream": "stream_url",
    "boxes.csv": "box_csv",
    "path/to/videos": "csv_videos",
    "path/to/cornell": "cornell",
    "pcd0100d.tiff": "cornell_depth",
    "pcd0100r.png": "cornell_rgb",
    "grasps.json": "grasp_preds",
    "grasp:best.safetensors": "grasp_weights",
}

#: Keys whose values are files or folders (``dst=`` is always a fresh output path).
PATH_KEYS = frozenset(
    "data frames flow src dst gt pred tubes weights source pretrained prototxt caffemodel rgb cfg teacher "
    "calib images flow_weights split_list object_map".split()
)
