"""Fast prompt decoding: SAM's prompt encoder and mask decoder, run with per-slice precomputation.

Same weights and arithmetic as ``MaskDecoder.predict_masks``, rearranged for a click loop:

* Without a previous-mask prompt the first transformer layer's image-side projections (keys and
  values for token-to-image attention, queries for image-to-token attention) do not depend on the
  prompt. :meth:`FastMaskDecoder.prepare` computes them once per slice.
* The two stride-2 transposed convolutions of the upscaling head are plain matrix products, which
  avoids the col2im path of ``ConvTranspose2d`` on CPU. Every step of the head is per pixel, so the
  sub-pixels stay in blocked order (pixel, sub-pixel) and only the four final masks are reordered.
* Attention uses ``scaled_dot_product_attention``, except image-to-token attention (thousands of
  queries on a few prompt tokens), whose scores are laid out (keys, queries) for a fast softmax.
* With bf16 the weights are converted once, not by autocast at every click; nothing is upsampled
  here (see sam_image).
"""
from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from segment_anything.modeling import Sam


@dataclass
class PreparedEmbedding:
    """Prompt-independent tensors of one slice, pixel-major (1, grid*grid, channels)."""

    keys: torch.Tensor  # image embedding (+ no-mask embedding when mask-free)
    embedding: torch.Tensor  # the raw embedding, pixel-major (1, g*g, C), used with mask prompts
    key_pe: torch.Tensor
    token_to_image_k: torch.Tensor
    token_to_image_v: torch.Tensor
    image_to_token_q: torch.Tensor
    source: Optional[torch.Tensor] = None  # the cached tensor this was prepared from


class FastMaskDecoder:
    """Decode prompts against a prepared embedding; returns all four mask tokens.

    Parameters
    ----------
    model : segment_anything.modeling.Sam
        Any SAM (registry or tiny); its weights are used, not copied (in fp32).
    bf16 : bool
        Run under CPU/GPU bfloat16 autocast (faster on CPUs with AVX512-BF16/AMX; masks differ
        slightly from fp32). The mask decoder's weights are then copied to bf16 once (8 MB for the
        released models) instead of being cast by autocast at every click.
    grid : (int, int), optional
        Token grid of the embeddings when the encoder runs below its native input size; the
        positional encoding is evaluated on that grid. Prompts stay in the native input frame.
    """

    def __init__(self, model: Sam, bf16: bool = False, grid: Optional[Tuple[int, int]] = None) -> None:
        self.model = model
        self.prompt_encoder = model.prompt_encoder
        self.decoder = model.mask_decoder
        self.transformer = model.mask_decoder.transformer
        self.device = model.device
        self.bf16 = bf16
        self.dtype = torch.bfloat16 if bf16 else torch.float32  # of the image-side matrix products
        self.grid = tuple(grid or model.prompt_encoder.image_embedding_size)
        self.lowres_size = 4 * self.grid[0]
        with torch.inference_mode():
            self.dense_pe = model.prompt_encoder.pe_layer(self.grid).unsqueeze(0)
            self.no_mask = model.prompt_encoder.no_mask_embed.weight.reshape(1, 1, -1)
            self._deconvs = [_as_matrix(m) for m in model.mask_decoder.output_upscaling
                             if isinstance(m, torch.nn.ConvTranspose2d)]
            # Projections of the fixed positional encoding, with the bias, per layer (+ final):
            # k_proj(keys + pe) == keys @ W.T + (pe @ W.T + b), one fused addmm per click.
            key_pe = self.dense_pe.flatten(2).transpose(1, 2)[0]
            self._pe_terms = [(layer.cross_attn_token_to_image.k_proj(key_pe),
                               layer.cross_attn_image_to_token.q_proj(key_pe))
                              for layer in self.transformer.layers]
            self._final_pe_k = self.transformer.final_attn_token_to_image.k_proj(key_pe)
        if bf16:
            self._to_bf16()
        self._layer_norm = self.decoder.output_upscaling[1]

    def _to_bf16(self) -> None:
        half = torch.bfloat16
        self.decoder = copy.deepcopy(self.decoder).to(half)
        self.transformer = self.decoder.transformer
        self._deconvs = [(matrix.to(half), bias.to(half)) for matrix, bias in self._deconvs]
        self._pe_terms = [(k.to(half), q.to(half)) for k, q in self._pe_terms]
        self._final_pe_k = self._final_pe_k.to(half)

    def _autocast(self):
        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def prepare(self, embedding: torch.Tensor) -> PreparedEmbedding:
        """Precompute the prompt-independent part for ``embedding`` (1, C, g, g)."""
        with torch.inference_mode(), self._autocast():
            embedding = embedding.to(self.device, torch.float32)
            flat = embedding.flatten(2).transpose(1, 2)
            key_pe = self.dense_pe.flatten(2).transpose(1, 2)
            keys = flat + self.no_mask
            first = self.transformer.layers[0]
            return PreparedEmbedding(
                keys=keys, embedding=flat.contiguous(), key_pe=key_pe,
                token_to_image_k=first.cross_attn_token_to_image.k_proj(keys + key_pe),
                token_to_image_v=first.cross_attn_token_to_image.v_proj(keys),
                image_to_token_q=first.cross_attn_image_to_token.q_proj(keys + key_pe),
            )

    def decode(
        self,
        prepared: PreparedEmbedding,
        points: Optional[torch.Tensor],
        labels: Optional[torch.Tensor],
        box: Optional[torch.Tensor],
        mask_input: Optional[torch.Tensor] = None,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Low-res logits and predicted IoU of the four mask tokens.

        Parameters
        ----------
        points : (1, N, 2) float32 in the model input frame, or None
        labels : (1, N) float32 (1 positive, 0 negative), or None
        box : (1, 2, 2) float32 corners in the model input frame, or None
        mask_input : (1, 1, L, L) low-res logits of a previous prediction, or None

        Returns
        -------
        logits : torch.Tensor float32 (4, L, L); token 0 is the single-mask output
        iou : torch.Tensor float32 (4,)
        """
        with torch.inference_mode(), self._autocast():
            point_pair = (points, labels) if points is not None else None
            sparse, _ = self.prompt_encoder(points=point_pair, boxes=box, masks=None)
            tokens = torch.cat([self.decoder.iou_token.weight, self.decoder.mask_tokens.weight], 0)
            tokens = torch.cat([tokens.unsqueeze(0), sparse.to(tokens.dtype)], dim=1)
            if mask_input is None:
                queries, keys = self._transformer(prepared, tokens, prepared.keys, precomputed=True)
            else:
                # Channels-last convolutions give the mask embedding pixel-major without a transposing copy.
                masks = mask_input.to(self.device).contiguous(memory_format=torch.channels_last)
                dense = self.prompt_encoder._embed_masks(masks).permute(0, 2, 3, 1).reshape(prepared.embedding.shape)
                keys = prepared.embedding + dense
                queries, keys = self._transformer(prepared, tokens, keys, precomputed=False)
            logits, iou = self._mask_head(queries, keys)
        return logits.float(), iou.float()

    def _transformer(self, prepared, tokens, keys, precomputed):
        """TwoWayTransformer.forward on pixel-major keys (1, g*g, C), fused where it pays."""
        query_pe, queries = tokens, tokens
        keys = keys[0]
        for index, layer in enumerate(self.transformer.layers):
            if layer.skip_first_layer_pe:
                queries = layer.self_attn(q=queries, k=queries, v=queries)
            else:
                q = queries + query_pe
                queries = queries + layer.self_attn(q=q, k=q, v=queries)
            queries = layer.norm1(queries)
            to_image, to_token = layer.cross_attn_token_to_image, layer.cross_attn_image_to_token
            if precomputed and index == 0:
                k, v = prepared.token_to_image_k[0], prepared.token_to_image_v[0]
                q_image = prepared.image_to_token_q[0]
            else:
                pe_k, pe_q = self._pe_terms[index]
                cast = keys.to(self.dtype)  # once for the three projections
                k = _project(to_image.k_proj, cast, pe_k)
                v = to_image.v_proj(cast)
                q_image = _project(to_token.q_proj, cast, pe_q)
            q = to_image.q_proj(queries + query_pe)
            queries = layer.norm2(queries + _attend(to_image, q, k[None], v[None]))
            queries = layer.norm3(queries + layer.mlp(queries))
            q_tokens = queries + query_pe
            heads = _heads_of_many_queries(to_token, q_image[None], to_token.k_proj(q_tokens), to_token.v_proj(queries))
            out = to_token.out_proj
            keys = torch.addmm(keys, heads[0], out.weight.t().to(keys.dtype)).add_(out.bias.to(keys.dtype))
            keys = layer.norm4(keys)
        final = self.transformer.final_attn_token_to_image
        cast = keys.to(self.dtype)
        k = _project(final.k_proj, cast, self._final_pe_k)
        attended = _attend(final, final.q_proj(queries + query_pe), k[None], final.v_proj(cast)[None])
        return self.transformer.norm_final_attn(queries + attended), keys[None]

    def _mask_head(self, queries, keys):
        decoder = self.decoder
        iou = decoder.iou_prediction_head(queries[:, 0, :])[0]
        mask_tokens = queries[0, 1: 1 + decoder.num_mask_tokens, :]
        hyper = torch.stack([mlp(mask_tokens[i]) for i, mlp in enumerate(decoder.output_hypernetworks_mlps)])
        rows, columns = self.grid
        (w1, b1), (w2, b2) = self._deconvs
        # Stride-2, kernel-2 transposed convolution == per-pixel matmul giving 2x2 sub-pixels.
        c1, c2 = b1.numel() // 4, b2.numel() // 4
        x = torch.addmm(b1, keys[0].to(self.dtype), w1).view(-1, c1)  # (g*g*4, C1)
        norm = self._layer_norm
        x = F.gelu(F.layer_norm(x, (c1,), norm.weight.to(x.dtype), norm.bias.to(x.dtype), norm.eps))
        x = F.gelu(torch.addmm(b2.to(x.dtype), x, w2.to(x.dtype))).view(-1, c2)  # (g*g*16, C2)
        masks = x @ hyper.to(x.dtype).t()  # rows: (row, column, sub-row 1, sub-col 1, sub-row 2, sub-col 2)
        masks = masks.view(rows, columns, 2, 2, 2, 2, -1).permute(6, 0, 2, 4, 1, 3, 5)
        return masks.reshape(-1, 4 * rows, 4 * columns), iou


def _as_matrix(deconv: torch.nn.ConvTranspose2d) -> Tuple[torch.Tensor, torch.Tensor]:
    """Weights (C_in, C_out, 2, 2) -> matrix (C_in, 4*C_out), columns sub-pixel-major, and bias tiled."""
    weight = deconv.weight.detach()
    matrix = weight.permute(0, 2, 3, 1).reshape(weight.shape[0], -1).contiguous()
    bias = deconv.bias.detach().repeat(4)
    return matrix, bias


def _project(linear: torch.nn.Linear, x: torch.Tensor, pe_term: torch.Tensor) -> torch.Tensor:
    """linear(x + pe) for 2D ``x``, with ``pe_term = linear(pe)`` precomputed (bias included), all of one dtype."""
    return torch.addmm(pe_term, x, linear.weight.t())


def _heads(attention, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Multi-head attention of projected (1, N, D) tensors; returns (1, N_q, D), heads merged."""
    count = attention.num_heads

    def split(x):
        return x.view(x.shape[0], x.shape[1], count, -1).transpose(1, 2)

    out = F.scaled_dot_product_attention(split(q), split(k), split(v))
    return out.transpose(1, 2).reshape(q.shape[0], q.shape[1], -1)


def _heads_of_many_queries(attention, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``_heads`` for thousands of image queries on a few prompt tokens: scores laid out (keys, queries) so the
    softmax runs across the long axis (5x faster on a CPU than the fused kernel or a softmax over 8 values)."""
    count = attention.num_heads

    def split(x):
        return x.view(x.shape[0], x.shape[1], count, -1).transpose(1, 2)

    heads_q, heads_k, heads_v = split(q), split(k), split(v)
    scores = torch.matmul(heads_k, heads_q.transpose(-2, -1)) * heads_q.shape[-1] ** -0.5  # (1, h, keys, queries)
    weights = torch.softmax(scores, dim=-2)
    out = torch.matmul(weights.transpose(-2, -1).to(heads_v.dtype), heads_v)
    return out.transpose(1, 2).reshape(q.shape[0], q.shape[1], -1)


def _attend(attention, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """segment_anything's Attention.forward after the input projections."""
    return attention.out_proj(_heads(attention, q, k, v))
