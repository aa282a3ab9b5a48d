"""Optional ONNX Runtime backend for :class:`sam_decoder.FastMaskDecoder`.

The fast decoder (same arithmetic, same weights) is exported in memory, once per model, as two
graphs: *prepared* (per-slice precomputed tensors, no previous mask) and *masked* (raw embedding
plus a previous low-res mask). ONNX Runtime then runs the click loop; on CPUs shared with other
work it degrades less than torch's OpenMP threads. Missing onnxruntime, or an export failure,
leaves the engine on torch with a warning.
"""
from __future__ import annotations

import io
import logging
import warnings
from typing import Optional, Tuple

import numpy as np
import torch

from .sam_decoder import FastMaskDecoder, PreparedEmbedding

_LOG = logging.getLogger(__name__)
_PREPARED_INPUTS = ["keys", "token_to_image_k", "token_to_image_v", "image_to_token_q", "coords", "labels"]
_MASKED_INPUTS = ["embedding", "mask_input", "coords", "labels"]


def onnxruntime_available() -> bool:
    """True when the onnxruntime package can be imported."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def sparse_prompt_arrays(points: Optional[np.ndarray], labels: Optional[np.ndarray],
                         box: Optional[np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
    """Points and box corners in one (1, N, 2) array with labels (1, N) as SAM's prompt encoder.

    Labels: 0/1 negative/positive point, 2/3 box corners, -1 the padding point added when there
    is no box.
    """
    coords, codes = [], []
    if points is not None:
        coords.append(points)
        codes.append(labels)
        if box is None:
            coords.append(np.zeros((1, 2), np.float32))
            codes.append(np.array([-1], np.float32))
    if box is not None:
        coords.append(box.reshape(2, 2))
        codes.append(np.array([2, 3], np.float32))
    return (np.concatenate(coords)[None].astype(np.float32),
            np.concatenate(codes)[None].astype(np.float32))


class _Graph(torch.nn.Module):
    """Traceable forward of the fast decoder (no Python branching on prompt content)."""

    def __init__(self, decoder: FastMaskDecoder, masked: bool) -> None:
        super().__init__()
        self.decoder = decoder
        self.masked = masked

    def _sparse(self, coords, labels):
        encoder = self.decoder.prompt_encoder
        embedded = encoder.pe_layer.forward_with_coords(coords + 0.5, encoder.input_image_size)
        codes = labels.unsqueeze(-1)
        sparse = embedded * (codes != -1) + encoder.not_a_point_embed.weight * (codes == -1)
        for index, embedding in enumerate(encoder.point_embeddings):
            sparse = sparse + embedding.weight * (codes == index)
        decoder = self.decoder.decoder
        tokens = torch.cat([decoder.iou_token.weight, decoder.mask_tokens.weight], 0)
        return torch.cat([tokens.unsqueeze(0), sparse], dim=1)

    def forward(self, *inputs):
        if self.masked:
            embedding, mask_input, coords, labels = inputs  # embedding pixel-major (1, g*g, C)
            dense = self.decoder.prompt_encoder._embed_masks(mask_input)
            keys = embedding + dense.flatten(2).transpose(1, 2)
            queries, keys = self.decoder._transformer(None, self._sparse(coords, labels), keys, False)
        else:
            keys, k, v, q, coords, labels = inputs
            prepared = PreparedEmbedding(keys, keys, keys, k, v, q)
            queries, keys = self.decoder._transformer(prepared, self._sparse(coords, labels), keys, True)
        return self.decoder._mask_head(queries, keys)


class OnnxMaskDecoder:
    """Runs a :class:`FastMaskDecoder` through ONNX Runtime (CPU).

    Parameters
    ----------
    decoder : FastMaskDecoder
        An fp32 decoder on the CPU.
    threads : int, optional
        ONNX Runtime intra-op threads (default: its own choice).

    Raises
    ------
    ImportError
        onnxruntime is not installed.
    RuntimeError
        The export or the session creation failed.
    """

    def __init__(self, decoder: FastMaskDecoder, threads: Optional[int] = None) -> None:
        import onnxruntime

        self.decoder = decoder
        options = onnxruntime.SessionOptions()
        options.inter_op_num_threads = 1
        if threads:
            options.intra_op_num_threads = int(threads)
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        grid, lowres, channels = decoder.grid, decoder.lowres_size, decoder.no_mask.shape[-1]
        internal = decoder.transformer.layers[0].cross_attn_token_to_image.internal_dim
        pixels = grid[0] * grid[1]
        coords, labels = torch.zeros(1, 2, 2), torch.tensor([[1.0, -1.0]])
        prepared_args = (torch.zeros(1, pixels, channels), torch.zeros(1, pixels, internal),
                         torch.zeros(1, pixels, internal), torch.zeros(1, pixels, internal), coords, labels)
        masked_args = (torch.zeros(1, pixels, channels), torch.zeros(1, 1, lowres, lowres), coords, labels)
        self._sessions = {}
        for masked, args, names in ((False, prepared_args, _PREPARED_INPUTS), (True, masked_args, _MASKED_INPUTS)):
            model = self._export(_Graph(decoder, masked), args, names)
            self._sessions[masked] = onnxruntime.InferenceSession(model, options,
                                                                  providers=["CPUExecutionProvider"])

    @staticmethod
    def _export(graph: torch.nn.Module, args, names) -> bytes:
        buffer = io.BytesIO()
        flags = [p.requires_grad for p in graph.decoder.model.parameters()]
        graph.decoder.model.requires_grad_(False)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
                torch.onnx.export(graph, args, buffer, dynamo=False, opset_version=17, input_names=names,
                                  output_names=["logits", "iou"],
                                  dynamic_axes={"coords": {1: "prompts"}, "labels": {1: "prompts"}})
        finally:
            for parameter, flag in zip(graph.decoder.model.parameters(), flags):
                parameter.requires_grad_(flag)
        return buffer.getvalue()

    def decode(self, prepared: PreparedEmbedding, points: Optional[np.ndarray], labels: Optional[np.ndarray],
               box: Optional[np.ndarray], mask_input: Optional[torch.Tensor] = None
               ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Same contract as :meth:`FastMaskDecoder.decode`, with NumPy prompts in the model frame."""
        coords, codes = sparse_prompt_arrays(points, labels, box)
        if mask_input is None:
            tensors = (prepared.keys, prepared.token_to_image_k, prepared.token_to_image_v,
                       prepared.image_to_token_q)
            feeds = dict(zip(_PREPARED_INPUTS, [t.float().numpy() for t in tensors] + [coords, codes]))
        else:
            feeds = dict(zip(_MASKED_INPUTS, [prepared.embedding.float().numpy(),
                                              mask_input.float().cpu().numpy(), coords, codes]))
        logits, iou = self._sessions[mask_input is not None].run(None, feeds)
        return torch.from_numpy(logits), torch.from_numpy(iou)
