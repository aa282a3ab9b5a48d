"""SAM's image encoder on the inference service, with local compute when the service cannot be reached.

``RemoteEncoder`` is set as ``SamEngine.remote_encoder``: the engine then sends each slice image to the
service and caches the float16 embedding it gets back (the same bytes the engine caches after a local
encoding); prompts are still decoded locally, in milliseconds. When the service is unreachable, refuses the
token or fails, the slice is encoded here, ``message`` says why, and the service is tried again after
``retry_after_s``.
"""
from __future__ import annotations

import logging
import time

from MVAComputeLib.compute_errors import ComputeError

_LOG = logging.getLogger(__name__)


class RemoteEncoder:
    """Encodes slice images through a ComputeClient (normally ComputeClient.remote(url, token)).

    Parameters
    ----------
    client : ComputeClient
    model_spec : dict
        The model the service should run (operations.normalised_model_spec); it must be the engine's model.
    """

    def __init__(self, client, model_spec, timeout_s=120.0, retry_after_s=30.0):
        self.client = client
        self.model_spec = dict(model_spec)
        self.timeout_s = timeout_s
        self.retry_after_s = retry_after_s
        self.message = ""
        self.remote_count = 0
        self.local_count = 0
        self._retry_at = 0.0

    def encode(self, image):
        """(embedding float32 tensor (1, C, g, g), input_size) from the service, or None to encode locally."""
        import torch
        if time.monotonic() < self._retry_at:
            self.local_count += 1
            return None
        try:
            reply = self.client.run("embed", {"model": self.model_spec}, {"image": image}, timeout_s=self.timeout_s)
        except (ComputeError, TimeoutError) as error:
            self._retry_at = time.monotonic() + self.retry_after_s
            self.message = f"Remote inference unavailable ({error}); computing on this machine"
            _LOG.warning(self.message)
            self.local_count += 1
            return None
        self.remote_count += 1
        self.message = f"embedded by the inference service in {reply.params.get('seconds', 0.0):.2f} s"
        embedding = torch.from_numpy(reply.arrays["embedding"]).float()
        return embedding, tuple(reply.params["input_size"])

    def close(self):
        self.client.close()


def remote_encoder(url, token, model_name, checkpoint=None, input_size=None):
    """A RemoteEncoder for the service at `url`, or None when no URL is set."""
    if not url:
        return None
    from MVAComputeLib.compute_client import ComputeClient
    return RemoteEncoder(ComputeClient.remote(url, token),
                         {"name": model_name, "checkpoint": None, "input_size": input_size})
