"""The architectures this project converts (light: imported at plan time, before any rule runs)."""

# transformers models (config.json's `architectures[0]`), converted by TransformerLens's own
# config mapping and weight converters; each is tested against transformers' forward pass.
TRANSFORMERS_ARCHITECTURES = ("GPT2LMHeadModel", "GPTNeoForCausalLM", "GPTNeoXForCausalLM", "OPTForCausalLM")
# `format: transformer_lens`: ARENA's layout (config in the entry) and NeelNanda's toys
# (attention-only, GELU, SoLU; a config.json in TransformerLens's training keys).
NATIVE_ARCHITECTURE = "transformer_lens"
SUPPORTED_ARCHITECTURES = (*TRANSFORMERS_ARCHITECTURES, NATIVE_ARCHITECTURE)
