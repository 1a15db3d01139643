"""The ONNX export of a run: writing ``model.onnx`` (normalisation included) and finding it again."""
from __future__ import annotations

import warnings
from pathlib import Path

import torch

from .errors import RunError, SignlabError
from .fsutil import atomic_write
from .labels import IMAGE_SIZE
from .normalize import normalize_for
from .predict import forward_views
from .runs import ONNX_FILE, Run, open_run


def check_out(run: Run, out: Path | str, force: bool = False) -> Path:
    """``out`` as a path ``export_onnx`` may write, or RunError naming what is wrong with it.

    Never a path inside the runs folder (other than the run's own ``model.onnx``): a mistyped
    ``--out runs/<id>/model.safetensors`` would replace the weights, ``runs/runs.db`` the run
    store. Never a folder, and an existing file only with ``force``: an export must not silently
    replace what a user saved.
    """
    path = Path(out).expanduser()
    target = path.resolve()
    own = (run.dir / ONNX_FILE).resolve()
    if target != own and target.is_relative_to(run.dir.parent.resolve()):
        raise RunError(f"--out: {out} is inside the runs folder; export somewhere else "
                       f"(or leave --out out for {run.dir.name}/model.onnx)")
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
    so are the test-time shifts of a model trained with them (``tta``), so the file's logits are
    the ones signlab's own predictions come from.
    """
    run = run if isinstance(run, Run) else open_run(run, runs_dir)
    out = check_out(run, out, force) if out else run.dir / ONNX_FILE
    model = run.load_model()

    class WithNormalize(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return forward_views(self.inner, normalize_for(self.inner, x))

    wrapped = WithNormalize(model).eval()
    example = torch.rand(2, 1, IMAGE_SIZE, IMAGE_SIZE)
    def write(p: Path) -> None:
        with warnings.catch_warnings():  # the exporter's notes on its own internals are not the user's to act on
            warnings.simplefilter("ignore")
            torch.onnx.export(wrapped, (example,), str(p), input_names=["image"], output_names=["logits"],
                              dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False,
                              opset_version=17)

    atomic_write(out, write)
    return out


def onnx_path(run: Run) -> Path | None:
    """The run's ONNX export if it exists and is newer than the weights; else None."""
    p = run.dir / ONNX_FILE
    try:
        if p.is_symlink():  # a planted link is never offered for download (read with run.file_bytes)
            return None
        if run.has_weights() and p.stat().st_mtime >= run.weights_mtime():
            return p
    except OSError:
        pass
    return None


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
