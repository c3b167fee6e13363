"""Small real files standing in for the paths README.md's commands name (helper of
tests/test_readme_commands.py).

:class:`ReadmeFiles` builds each file the first time a command asks for it, under one folder:
datasets in the real on-disk formats (the project's synthetic generators: shapes VOC, the action
videos in the YOWO layout with an ACT pickle, Cornell depth scenes), prediction files derived from
their ground truth, weights of small models saved by the project's own writers, and the weights of
other projects as the tests of ``tests/convert`` write them (torchvision, ssd.pytorch, YOWO, ACT's
Caffe files; their builders are imported from those test files). An ``rtsp://`` camera becomes a
local HTTP server that sends an MPEG-TS video and closes. The action stand-ins live in
``readme_files_action.py``; :data:`PLACEHOLDERS` maps each README path to its factory.
"""

from __future__ import annotations

import http.server
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import torch

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent


def _load_action_files() -> ModuleType:
    spec = importlib.util.spec_from_file_location("readme_files_action", TESTS / "readme_files_action.py")
    assert spec is not None and spec.loader is not None
    module = sys.modules.setdefault("readme_files_action", importlib.util.module_from_spec(spec))
    if not hasattr(module, "ActionFiles"):
        spec.loader.exec_module(module)
    return module


ActionFiles = _load_action_files().ActionFiles
load_test_module = _load_action_files().load_test_module


def _random_state(shapes: dict[str, torch.Tensor], seed: int = 0) -> dict[str, torch.Tensor]:
    """Small random float tensors (integer buffers zero) of the shapes of a state dict built on the
    meta device: another project's file without the cost of its initialisers."""
    gen = torch.Generator().manual_seed(seed)
    return {
        k: torch.randn(v.shape, generator=gen) * 0.02 if v.is_floating_point() else torch.zeros(v.shape, dtype=v.dtype)
        for k, v in shapes.items()
    }


class ReadmeFiles(ActionFiles):
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
