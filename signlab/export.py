"""The ONNX export of a run: writing ``model.onnx`` (normalisation included) and finding it again."""
from __future__ import annotations

import functools
import io
import os
import warnings
from pathlib import Path

import torch

from .errors import RunError, SignlabError
from .fsutil import atomic_write
from .labels import IMAGE_SIZE
from .normalize import normalize_for
from .predict import forward_views
from .paths import runs_root
from .runs import ONNX_FILE, Run, open_run
from .store import db_url_for

# What the exported graph computes, written into each file (metadata ``signlab_export``). Raise it
# whenever that changes, so a run's model.onnx from an older signlab is exported again rather than
# offered as current: version 2 reads a photo run's image with its mirror image, as predict does
# (version 1's files, with no number, read the image alone and disagreed with predict).
EXPORT_VERSION = 2
VERSION_KEY = "signlab_export"


def check_out(run: Run, out: Path | str, force: bool = False, runs_dir: Path | str | None = None) -> Path:
    """``out`` as a path ``export_onnx`` may write, or RunError naming what is wrong with it.

    Never a path inside the runs folder (other than the run's own ``model.onnx``): a mistyped
    ``--out runs/<id>/model.safetensors`` would replace the weights, ``runs/runs.db`` the run
    store. That is the folder holding the run and the runs folder in use (``runs_dir``, else the
    default): a run given as a copy's folder passed the check, and its export replaced another run's
    weights. Never the run database's file, never a folder (``exports/`` made a file named
    ``exports``), and an existing file only with ``force``: an export must not silently replace what
    a user saved.
    """
    if str(out).endswith(("/", os.sep)):
        raise RunError(f"--out: {out} names a folder; give a file name such as {Path(out) / 'model.onnx'}")
    path = Path(out).expanduser()
    target = path.resolve()
    own = (run.dir / ONNX_FILE).resolve()
    in_use = runs_root(runs_dir)
    for root in {run.dir.parent.resolve(), in_use.resolve()}:
        if target != own and target.is_relative_to(root):
            raise RunError(f"--out: {out} is inside the runs folder; export somewhere else "
                           f"(or leave --out out for {run.dir.name}/model.onnx)")
    database = db_url_for(in_use)
    if database.startswith("sqlite:///") and target == Path(database.removeprefix("sqlite:///")).resolve():
        raise RunError(f"--out: {out} is the run database; export somewhere else")
    if target.is_dir():
        raise RunError(f"--out: {out} is a folder; give a file name such as {Path(out) / 'model.onnx'}")
    if target.exists() and not target.is_file():
        # atomic_write renames over what is there: run as root, --out /dev/null --force replaced the
        # machine's /dev/null with a file
        raise RunError(f"--out: {out} is not a file (a device, a pipe or a socket); give a file name")
    # a link to nowhere too (Path.exists() follows it): it was replaced, and named as a missing folder
    if (target.exists() or path.is_symlink()) and target != own and not force:
        raise RunError(f"--out: {out} already exists; pass --force to replace it")
    if not target.parent.is_dir():
        raise RunError(f"--out: the folder {path.parent} does not exist")
    return path


def export_onnx(run: Run | str, out: Path | str | None = None, runs_dir: Path | str | None = None,
                force: bool = False) -> Path:
    """Write the run's model as ONNX: input ``image`` (B, 1, 28, 28) in [0, 1], output ``logits`` (B, 24).

    The per-image normalisation is part of the exported graph, so the file takes raw pixels / 255;
    so are the test-time shifts of a model trained with them (``tta``). A run trained on photo-like
    images (the robust preset, a calibrated run) reads each image and its mirror image, as
    ``predict`` does (a sign made with either hand counts the same): its ``logits`` are then the
    logarithms of the two readings' averaged probabilities, whose softmax is that average. Without
    it the file's top letter differed from ``predict``'s on 11 of 60 enlarged test images. What a
    28x28 input cannot hold stays outside the file: ``predict`` also reads the photo in
    other framings (zoomed out and in), and weighs in the hand's shape from its landmarks.
    """
    run = run if isinstance(run, Run) else open_run(run, runs_dir)
    out = check_out(run, out, force, runs_dir) if out else run.dir / ONNX_FILE
    model = run.load_model()
    mirror = bool(run.config.augment_photo)

    class WithNormalize(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, 28, 28) -> (B, 24)
            logits = forward_views(self.inner, normalize_for(self.inner, x))
            if not mirror:
                return logits
            flipped = forward_views(self.inner, normalize_for(self.inner, x.flip(3)))
            return torch.log((torch.softmax(logits, 1) + torch.softmax(flipped, 1)) / 2)

    wrapped = WithNormalize(model).eval()
    example = torch.rand(2, 1, IMAGE_SIZE, IMAGE_SIZE)
    def write(p: Path) -> None:
        import onnx

        buffer = io.BytesIO()
        with warnings.catch_warnings():  # the exporter's notes on its own internals are not the user's to act on
            warnings.simplefilter("ignore")
            torch.onnx.export(wrapped, (example,), buffer, input_names=["image"], output_names=["logits"],
                              dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False,
                              opset_version=17)
        graph = onnx.load_from_string(buffer.getvalue())
        onnx.helper.set_model_props(graph, {VERSION_KEY: str(EXPORT_VERSION), "signlab_run": run.id})
        # a file object, not the path: a path that is not UTF-8 (a folder named in Latin-1) ended in
        # the exporter's 300-line TypeError
        with open(p, "wb") as f:
            f.write(graph.SerializeToString())

    # the advice for a path the user gave is --out's, not the runs folder's
    atomic_write(out, write, elsewhere="another runs folder" if out == run.dir / ONNX_FILE else "another --out")
    return out


def onnx_path(run: Run) -> Path | None:
    """The run's ONNX export if it exists, is newer than the weights and was written by this
    version's export (:data:`EXPORT_VERSION`); else None, and the Runs page offers to export again."""
    p = run.dir / ONNX_FILE
    try:
        if p.is_symlink():  # a planted link is never offered for download (read with run.file_bytes)
            return None
        if run.has_weights() and p.stat().st_mtime >= run.weights_mtime() and export_version(p) == EXPORT_VERSION:
            return p
    except OSError:
        pass
    return None


def export_version(path: Path) -> int | None:
    """The export version an ONNX file says it was written by; None for a file without one (older
    than version 2) or one that is not ONNX. Parsed once per file as it is (its size and time): the
    Runs page asks at every redraw, and an ensemble's file is megabytes of protobuf."""
    try:
        st = path.stat()
    except OSError:
        return None
    return _export_version(str(path), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=64)
def _export_version(path: str, mtime_ns: int, size: int) -> int | None:
    import onnx

    try:
        props = {p.key: p.value for p in onnx.load(path, load_external_data=False).metadata_props}
    except Exception:  # noqa: BLE001 - protobuf's DecodeError and more: a file we cannot read is not offered
        return None
    value = props.get(VERSION_KEY, "")
    return int(value) if value.isdigit() and len(value) < 6 else None


def export_for_download(run: Run) -> Path:
    """Export the run to ``<run>/model.onnx`` for the Runs page; any failure becomes a RunError with
    one clear line."""
    if not run.has_weights():
        raise run.no_weights_error()
    try:
        return export_onnx(run)
    except SignlabError:
        raise
    except Exception as err:  # noqa: BLE001 - the exporter raises many kinds; the page shows one line
        raise RunError(f"the ONNX export of run {run.id} failed ({type(err).__name__}: {err})") from err
