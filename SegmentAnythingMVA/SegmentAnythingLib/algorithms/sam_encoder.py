"""Image encoder runner: segment_anything's ViT with its own weights, faster on CPU, any input size.

Results equal ``ImageEncoderViT.forward``'s up to float rounding; what is computed differently:

* Global attention is computed a few query rows at a time, the decomposed relative-position
  terms added in place. The stock code materialises two broadcast sums over the whole
  (heads, tokens, tokens) score matrix, which dominates those blocks on a CPU (4096 x 4096
  scores per head at 1024 px).
* In the 14 x 14 windows the position terms join the query-key product instead: queries get
  their row and column terms as 28 extra channels, keys a one-hot of their row and column, so
  one matrix product adds them (2.4x faster there, and accumulated in fp32 under bf16).
* The windows' input and output projections skip the zero padding (its projection is the bias).

And, optionally, an input side smaller than the model's 1024 (``input_size``, a multiple of the patch
size): the absolute position embedding is resized bicubically to the smaller token grid and the
global blocks' relative positions are interpolated by segment_anything's ``get_rel_pos``. Fewer
tokens make the encoder several times faster; the released weights were trained at 1024, so
quality at smaller sizes must be checked on real data before relying on it.
"""
from __future__ import annotations

import contextlib
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from segment_anything.modeling.image_encoder import (
    Block,
    ImageEncoderViT,
    get_rel_pos,
    window_partition,
    window_unpartition,
)

QUERY_CHUNK = 256  # CPU: query tokens per attention chunk, scores stay in cache (measured best 128-256)


class FastImageEncoder:
    """Callable ``pixels (1, 3, S, S) -> embedding (1, C, S/16, S/16)`` for an ``ImageEncoderViT``.

    Parameters
    ----------
    encoder : ImageEncoderViT
        Used by reference; its weights are never modified.
    input_size : int, optional
        Side S of the padded input; the model's own ``img_size`` when omitted.
    bf16 : bool
        bfloat16 autocast (CPU with native BF16, or GPU).
    query_chunk : int, optional
        Query tokens per attention chunk; by default ``QUERY_CHUNK`` on the CPU and no chunking on
        accelerators, where one large product is faster than many small ones.
    """

    def __init__(self, encoder: ImageEncoderViT, input_size: Optional[int] = None, bf16: bool = False,
                 query_chunk: Optional[int] = None) -> None:
        patch = int(encoder.patch_embed.proj.kernel_size[0])
        native = int(encoder.img_size)
        size = native if input_size is None else int(input_size)
        if size % patch or not patch * 2 <= size <= native:
            raise ValueError(f"Encoder input size must be a multiple of {patch} between {2 * patch} and "
                             f"{native}, got {input_size}.")
        self.encoder = encoder
        self.input_size = size
        self.grid = size // patch
        self.bf16 = bf16
        self.query_chunk = query_chunk
        self._pos_embed: Dict[torch.device, torch.Tensor] = {}

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        if pixels.shape[-2:] != (self.input_size, self.input_size):
            raise ValueError(f"Expected a {self.input_size} px square input, got {tuple(pixels.shape[-2:])}.")
        encoder = self.encoder
        chunk = self.query_chunk or (QUERY_CHUNK if pixels.device.type == "cpu" else pixels.shape[-1] ** 2)
        with torch.inference_mode(), self._autocast(pixels.device):
            x = encoder.patch_embed(pixels)
            if encoder.pos_embed is not None:
                x = x + self._position_embedding()  # fp32: keeps the residual stream fp32 as stock
            for block in encoder.blocks:
                x = _run_block(block, x, chunk)
            return encoder.neck(x.permute(0, 3, 1, 2))

    def _autocast(self, device: torch.device):
        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=torch.bfloat16)

    def _position_embedding(self) -> torch.Tensor:
        pos = self.encoder.pos_embed
        if pos.shape[1] == self.grid:
            return pos
        cached = self._pos_embed.get(pos.device)
        if cached is None:
            resized = F.interpolate(pos.detach().permute(0, 3, 1, 2).float(), size=(self.grid, self.grid),
                                    mode="bicubic", align_corners=False)
            cached = self._pos_embed[pos.device] = resized.permute(0, 2, 3, 1).contiguous()
        return cached


def _run_block(block: Block, x: torch.Tensor, chunk: int) -> torch.Tensor:
    shortcut = x
    attn = block.attn
    # Input and output projections act per token, so they run on the image's tokens only: the stock
    # code also projects the zero padding of the windows (whose projection is just the bias).
    qkv = attn.qkv(block.norm1(x))
    if block.window_size > 0:
        rows, columns = x.shape[1], x.shape[2]
        windows, padded = _partition_padding_with_bias(qkv, block.window_size, attn.qkv.bias)
        out = _attention(attn, windows, chunk, fold_positions=True)
        out = window_unpartition(out, block.window_size, padded, (rows, columns))
    else:
        out = _attention(attn, qkv, chunk)
    x = shortcut + attn.proj(out)
    return x + block.mlp(block.norm2(x))


def _partition_padding_with_bias(qkv: torch.Tensor, window: int, bias: Optional[torch.Tensor]):
    """``window_partition`` of projected tokens; padding tokens get the projection of zero, the bias."""
    batch, rows, columns, channels = qkv.shape
    padded_rows, padded_columns = -(-rows // window) * window, -(-columns // window) * window
    if (padded_rows, padded_columns) != (rows, columns):
        fill = bias.to(qkv.dtype) if bias is not None else qkv.new_zeros(channels)
        full = fill.expand(batch, padded_rows, padded_columns, channels).clone()
        full[:, :rows, :columns] = qkv
        qkv = full
    return window_partition(qkv, window)


def _attention(attn, qkv: torch.Tensor, chunk: int, fold_positions: bool = False) -> torch.Tensor:
    """``Attention.forward`` of segment_anything between its projections, chunked over query rows.

    ``qkv`` (batch, rows, columns, 3 C) -> heads merged (batch, rows, columns, C), before ``proj``.
    """
    batch, rows, columns, _ = qkv.shape
    tokens = rows * columns
    heads = attn.num_heads
    qkv = qkv.reshape(batch, tokens, 3, heads, -1).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.reshape(3, batch * heads, tokens, -1).unbind(0)
    if attn.use_rel_pos:
        rel_rows = get_rel_pos(rows, rows, attn.rel_pos_h).to(q.dtype)
        rel_columns = get_rel_pos(columns, columns, attn.rel_pos_w).to(q.dtype)
        if fold_positions:
            out = _folded_attention(q * attn.scale, q, k, v, rel_rows, rel_columns, rows, columns)
            return _merge_heads(out, batch, heads, rows, columns)
    keys_t = k.transpose(-2, -1).contiguous()  # once, not per chunk
    out = torch.empty_like(v)
    step = max(1, chunk // columns)
    for start in range(0, rows, step):
        stop = min(rows, start + step)
        queries = q[:, start * columns: stop * columns]
        scores = torch.bmm(queries * attn.scale, keys_t)
        if attn.use_rel_pos:
            grid_q = queries.reshape(batch * heads, stop - start, columns, -1)
            by_row = torch.einsum("bhwc,hkc->bhwk", grid_q, rel_rows[start:stop])
            by_column = torch.einsum("bhwc,wkc->bhwk", grid_q, rel_columns)
            view = scores.view(batch * heads, stop - start, columns, rows, columns)
            view.add_(by_row[..., None].to(scores.dtype)).add_(by_column[..., None, :].to(scores.dtype))
        weights = scores.softmax(dim=-1)
        out[:, start * columns: stop * columns] = torch.bmm(weights.to(v.dtype), v)
    return _merge_heads(out, batch, heads, rows, columns)


def _merge_heads(out: torch.Tensor, batch: int, heads: int, rows: int, columns: int) -> torch.Tensor:
    return out.view(batch, heads, rows, columns, -1).permute(0, 2, 3, 1, 4).reshape(batch, rows, columns, -1)


def _folded_attention(scaled_q, q, k, v, rel_rows, rel_columns, rows: int, columns: int) -> torch.Tensor:
    """softmax(scaled_q k^T + row term + column term) v, position terms folded into one product."""
    count, tokens = q.shape[0], rows * columns
    grid_q = q.reshape(count, rows, columns, -1)
    by_row = torch.einsum("bhwc,hkc->bhwk", grid_q, rel_rows).reshape(count, tokens, rows)
    by_column = torch.einsum("bhwc,wkc->bhwk", grid_q, rel_columns).reshape(count, tokens, columns)
    row_of_key = torch.eye(rows, dtype=k.dtype, device=k.device)[:, None, :].expand(rows, columns, rows)
    column_of_key = torch.eye(columns, dtype=k.dtype, device=k.device)[None].expand(rows, columns, columns)
    queries = torch.cat([scaled_q, by_row.to(q.dtype), by_column.to(q.dtype)], dim=-1)
    keys = torch.cat([k, row_of_key.reshape(1, tokens, rows).expand(count, -1, -1),
                      column_of_key.reshape(1, tokens, columns).expand(count, -1, -1)], dim=-1)
    weights = torch.bmm(queries, keys.transpose(-2, -1)).softmax(dim=-1)
    return torch.bmm(weights.to(v.dtype), v)
