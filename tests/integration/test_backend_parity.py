"""onnxruntime (the CPU engine) and the torch interpretation of the same ONNX graphs agree.

On a GPU machine the torch backend runs fp16 on CUDA (bench/gpu_check.py compares there); here it
runs fp32 on the CPU, which checks the graph interpretation itself.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from facesieve.faces import scrfd  # noqa: E402
from facesieve.faces.backends import OrtBackend, TorchBackend  # noqa: E402
from facesieve.faces.model_pack import ModelPack  # noqa: E402
from tests.conftest import photo_pixels  # noqa: E402

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pack() -> ModelPack:
    return ModelPack.resolve()


def test_detector_outputs_agree_on_real_photos(pack: ModelPack) -> None:
    canvases = [scrfd.letterbox(photo_pixels(n), 640)[0] for n in ("players.jpg", "gdp.jpg")]
    batch = scrfd.to_input(canvases)
    ort_out = OrtBackend(pack.detector).run(batch)
    torch_out = TorchBackend(pack.detector, "cpu").run(batch)
    assert len(ort_out) == len(torch_out) == 9
    for a, b in zip(ort_out, torch_out, strict=True):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, atol=2e-4)
    d_ort = scrfd.decode(ort_out, 0, 640, 1.0, 0.5, 0.4)
    d_torch = scrfd.decode(torch_out, 0, 640, 1.0, 0.5, 0.4)
    assert len(d_ort) == len(d_torch) > 15
    np.testing.assert_allclose(d_ort.boxes, d_torch.boxes, atol=0.05)


def test_recognizer_embeddings_agree(pack: ModelPack) -> None:
    rng = np.random.default_rng(3)
    crops = np.stack(
        [photo_pixels("yaoming.jpg")[40:152, 60:172]] * 2 + [rng.integers(0, 255, (112, 112, 3))]
    )
    x = ((crops.astype(np.float32) - 127.5) / 127.5).transpose(0, 3, 1, 2)
    a = OrtBackend(pack.recognizer).run(x)[0]
    b = TorchBackend(pack.recognizer, "cpu").run(x)[0]
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    assert a.shape == (3, 512)
    assert (a * b).sum(1).min() > 0.9999


def test_a_face_gets_the_same_bits_whatever_shares_its_padded_batch(pack: ModelPack) -> None:
    """With a fixed batch, a few faces embedded alone (a nightly rerun) equal the same faces in
    a full batch (the fresh run): one input shape, one choice of kernels."""
    rng = np.random.default_rng(5)
    crops = rng.integers(0, 255, (6, 3, 112, 112)).astype(np.float32) / 127.5 - 1.0
    backend = TorchBackend(pack.recognizer, "cpu", batch=8)
    alone = backend.run(crops[:1])[0]
    together = backend.run(crops)[0]
    assert alone.shape == (1, 512) and together.shape == (6, 512)
    assert np.array_equal(alone[0], together[0])
    assert not np.array_equal(together[0], together[1])
