"""Interoperability with other libraries' checkpoints (reference only, not a lesson).

``hf``: Hugging Face ``LlamaForCausalLM`` <-> ``intro2llm.model.causal_lm.CausalLM``
(``config.json`` and safetensors state dicts). Imports torch.
"""

from .hf import (
    config_from_hf,
    config_to_hf,
    from_hf_state_dict,
    load_hf,
    save_hf,
    to_hf_state_dict,
)

__all__ = ["config_from_hf", "config_to_hf", "from_hf_state_dict", "load_hf", "save_hf", "to_hf_state_dict"]
