import pytest
import torch

from audioscope_kedro.models.embeddings import EmbeddingConfig, ImageEmbedding


def test_image_weights_from_local_file(tmp_path):
    cfg = EmbeddingConfig(dim=16, image_channels=(8, 16))
    net = ImageEmbedding(cfg)
    torch.save(net.state_dict(), tmp_path / "img.pt")
    loaded = ImageEmbedding(cfg)
    loaded.load_weights(tmp_path / "img.pt")
    for (k, v), (_, w) in zip(net.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(v, w), k
    with pytest.raises(FileNotFoundError, match="image_weights"):
        ImageEmbedding(cfg).load_weights(tmp_path / "nope.pt")
