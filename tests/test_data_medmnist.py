import warnings

import numpy as np
import pytest

from bloodcells.data import DataError, DataUnavailable, load_bloodmnist, open_bloodmnist
from bloodcells.data import medmnist_io


def test_loads_medmnist_layout(npz_factory):
    with pytest.warns(UserWarning, match="split sizes"):  # the tiny file is a subset
        ds = load_bloodmnist(npz_factory(drop=("synthetic",)))
    assert ds.images["train"].dtype == np.uint8 and ds.images["train"].shape[1:] == (28, 28, 3)
    assert ds.labels["test"].ndim == 1 and ds.labels["test"].dtype == np.int64
    assert ds.class_names[3] == "immature granulocytes"
    assert ds.long_names[3].startswith("immature granulocytes(myelocytes")
    assert not ds.synthetic and "SYNTHETIC" not in ds.title


def test_synthetic_flag_is_read_and_shown(npz_factory):
    ds = load_bloodmnist(npz_factory())
    assert ds.synthetic and ds.title.endswith("(SYNTHETIC)") and "SYNTHETIC" in repr(ds)


def test_missing_file_offline_names_file_url_md5_and_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(medmnist_io, "online", lambda url, timeout=3.0: False)
    with pytest.raises(DataUnavailable) as err:
        load_bloodmnist(tmp_path / "nowhere")
    message = str(err.value)
    assert "bloodmnist.npz" in message and "zenodo.org" in message
    assert "7053d0359d879ad8a5505303e11de1dc" in message and str(tmp_path / "nowhere") in message


def test_offline_check_is_fast(tmp_path, monkeypatch):
    """A download host that does not answer fails in seconds (a closed loopback port stands in
    for it, so the test means the same on a machine that is online)."""
    import time

    url, md5 = medmnist_io.source_url(64)
    monkeypatch.setattr(medmnist_io, "source_url", lambda size: ("http://127.0.0.1:9/bloodmnist_64.npz", md5))
    start = time.perf_counter()
    with pytest.raises(DataUnavailable):
        load_bloodmnist(tmp_path, size=64)
    assert time.perf_counter() - start < 10


def test_no_download_when_disabled(tmp_path):
    with pytest.raises(DataUnavailable, match="Not found"):
        load_bloodmnist(tmp_path, download_if_missing=False)


def test_corrupt_npz(tmp_path):
    (tmp_path / "bloodmnist.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataError, match="corrupt.*download it again"):
        load_bloodmnist(tmp_path)


def test_missing_keys(npz_factory):
    with pytest.raises(DataError, match=r"lacks the keys \['val_labels'\]"):
        load_bloodmnist(npz_factory(drop=("val_labels",)))


def test_wrong_dtype(npz_factory, tiny_arrays):
    with pytest.raises(DataError, match="dtype float32, expected uint8"):
        load_bloodmnist(npz_factory(train_images=tiny_arrays["train_images"].astype(np.float32)))


def test_wrong_shape(npz_factory, tiny_arrays):
    gray = tiny_arrays["test_images"][..., 0]
    with pytest.raises(DataError, match=r"expected \(N, S, S, 3\)"):
        load_bloodmnist(npz_factory(test_images=gray))


def test_size_mismatch(npz_factory):
    folder = npz_factory()
    (folder / "bloodmnist.npz").rename(folder / "bloodmnist_64.npz")
    with pytest.raises(DataError, match="are 28x28 but size=64"):
        load_bloodmnist(folder, size=64)


def test_labels_out_of_range(npz_factory, tiny_arrays):
    labels = tiny_arrays["val_labels"].copy()
    labels[0] = 9
    with pytest.raises(DataError, match=r"range 0\.\.9.*0\.\.7"):
        load_bloodmnist(npz_factory(val_labels=labels))


def test_label_count_mismatch(npz_factory, tiny_arrays):
    with pytest.raises(DataError, match="images but .* labels"):
        load_bloodmnist(npz_factory(val_labels=tiny_arrays["val_labels"][:-1]))


def test_unsupported_size():
    with pytest.raises(DataError, match="sizes"):
        load_bloodmnist(size=30)


def test_env_var_root(monkeypatch, npz_factory):
    folder = npz_factory()
    monkeypatch.setenv("BLOODCELLS_DATA_DIR", str(folder.parent))
    assert medmnist_io.find_file(None) == folder / "bloodmnist.npz"


def test_auto_falls_back_to_synthetic_with_a_warning(tmp_path, monkeypatch):
    monkeypatch.setattr(medmnist_io, "online", lambda url, timeout=3.0: False)
    monkeypatch.setattr(medmnist_io, "candidate_roots", lambda root=None: [tmp_path])
    monkeypatch.setattr("bloodcells.data.synthetic.kit_data_dir", lambda: tmp_path)
    monkeypatch.setattr("bloodcells.data.synthetic.BLOODMNIST_SPLIT_SIZES", {"train": 80, "val": 16, "test": 16})
    with pytest.warns(UserWarning, match="SYNTHETIC"):
        ds = open_bloodmnist("auto")
    assert ds.synthetic and len(ds.labels["train"]) == 80
    with pytest.raises(DataUnavailable):
        open_bloodmnist("real")
    with pytest.raises(DataError, match="must be one of"):
        open_bloodmnist("imagenet")


def test_real_bloodmnist(real_data_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the real file has medmnist's split sizes: no warning
        ds = open_bloodmnist("real", real_data_dir)
    assert {s: len(ds.labels[s]) for s in ds.splits} == {"train": 11959, "val": 1712, "test": 3421}
    assert ds.images["train"].shape == (11959, 28, 28, 3) and not ds.synthetic
    assert set(np.unique(ds.labels["test"])) == set(range(8))


def test_a_stalled_download_fails_instead_of_hanging():
    """A server on loopback that accepts the connection and never answers: urllib (what medmnist and
    torchvision download with) gives up within the stall timeout."""
    import socket
    import time
    import urllib.request

    from bloodcells.network import stall_timeout

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    url = f"http://127.0.0.1:{server.getsockname()[1]}/bloodmnist.npz"
    start = time.perf_counter()
    try:
        with stall_timeout(1.0), pytest.raises(OSError):  # socket.timeout / URLError are OSErrors
            urllib.request.urlopen(url).read()
    finally:
        server.close()
    assert time.perf_counter() - start < 10
    assert socket.getdefaulttimeout() is None  # restored


def test_reading_bloodmnist_does_not_import_torch(npz_factory):
    """medmnist's package imports torch (500 MB): lab 1 reads medmnist's facts without it."""
    import subprocess
    import sys

    folder = npz_factory()
    code = (f"import sys; from bloodcells.data import load_bloodmnist; load_bloodmnist({str(folder)!r}); "
            "print('torch' in sys.modules, 'medmnist' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["False", "False"], done.stderr[-2000:]


def test_an_empty_split_is_refused_before_any_training(npz_factory):
    empty = np.zeros((0, 28, 28, 3), np.uint8)
    with pytest.raises(DataError, match="test_images holds no images"):
        load_bloodmnist(npz_factory(test_images=empty, test_labels=np.zeros((0, 1), np.int64)))
