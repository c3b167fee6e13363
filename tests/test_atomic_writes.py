"""Every file a mode writes is written atomically (singleshot.atomic): a source scan for plain writes,
and the writer's own guarantees."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from singleshot.atomic import atomic_write, save_image, write_text

PACKAGE = Path(__file__).resolve().parents[1] / "singleshot"

#: Files allowed to write plainly, and why.
PLAIN_WRITERS = {
    # generated datasets: ensure_dataset writes its completion marker (with every file's size and
    # time) last, so a dataset cut short is rewritten, never read
    "data/shapes.py": "generated dataset",
    "data/grasp/synthetic.py": "generated dataset",
    "data/action/synthetic.py": "generated dataset",
    # optical flow is written into a temporary folder that is renamed whole when complete
    "tasks/action/flow.py": "temporary folder renamed whole",
    # streams written as they are produced (valid up to their last record / frame at every moment)
    "tasks/action/predict.py": "JSON Lines written as frames arrive",
    "tasks/detect/predict.py": "JSON Lines written as frames arrive",
    "io/video.py": "MP4 written as frames arrive",
}


#: Names of open file objects and in-memory buffers (an atomic writer's temporary file is ``f``).
FILE_OBJECTS = ("f", "buf", "buffer")


def _plain_writes(tree: ast.AST) -> list[str]:
    """``path.write_text/write_bytes``, ``fig.savefig(path)``, ``x.save(path)`` (PIL, onnx; not
    into an open file ``f``) and ``open(..., "w"/"a")`` calls, as ``line: code``."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        plain = False
        if isinstance(func, ast.Attribute) and func.attr in ("write_text", "write_bytes"):
            plain = True
        elif isinstance(func, ast.Attribute) and func.attr in ("save", "savefig"):
            torch_save = isinstance(func.value, ast.Name) and func.value.id == "torch"
            target = (node.args[-1] if torch_save else node.args[0]) if node.args else None
            plain = not (isinstance(target, ast.Name) and target.id in FILE_OBJECTS)
        elif isinstance(func, ast.Name) and func.id == "open":
            modes = [a.value for a in node.args[1:2] if isinstance(a, ast.Constant)]
            modes += [k.value.value for k in node.keywords if k.arg == "mode" and isinstance(k.value, ast.Constant)]
            plain = any(isinstance(m, str) and ("w" in m or "a" in m) for m in modes)
        if plain:
            found.append(f"{node.lineno}: {ast.unparse(node)[:80]}")
    return found


def test_no_module_writes_a_file_plainly() -> None:
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel == "atomic.py" or rel in PLAIN_WRITERS:
            continue
        writes = _plain_writes(ast.parse(path.read_text()))
        if writes:
            offenders[rel] = writes
    assert offenders == {}, f"write these through singleshot.atomic: {offenders}"


def test_the_scan_sees_plain_writes() -> None:
    code = "p.write_text('x')\nImage.fromarray(a).save(p)\nfig.savefig(p)\nopen(p, 'w')\nimg.save(f, format='PNG')\n"
    assert len(_plain_writes(ast.parse(code))) == 4  # the last one writes into the temporary file


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = write_text(tmp_path / "metrics.json", "old")

    def broken(f: object) -> None:
        raise KeyboardInterrupt  # as SIGINT; SIGTERM arrives as SystemExit, also a BaseException

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, broken, durable=False)
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_save_image_takes_the_format_from_the_suffix(tmp_path: Path) -> None:
    image = Image.fromarray(np.full((4, 5, 3), 200, np.uint8))
    for name in ("a.jpg", "b.png", "c.tiff"):
        save_image(image, tmp_path / name)
        with Image.open(tmp_path / name) as back:
            assert back.size == (5, 4) and back.format == {"jpg": "JPEG", "png": "PNG", "tiff": "TIFF"}[name[2:]]
    with pytest.raises(ValueError, match="no image format"):
        save_image(image, tmp_path / "d.unknown")
