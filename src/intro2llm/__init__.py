"""intro2llm: the reference library of the Intro2LLM course.

Every module here is the complete, tested solution of one lesson target: the
config and tokenizers (lesson 01), norms and embeddings, attention, the
Transformer block and the causal LM, datasets, losses, optimizers, trainers,
LoRA and evaluation. Learners write the same modules in their own ``my_llm``
package from stubs generated out of this source.

Subpackages are imported on demand (``from intro2llm.tokenizer import
ByteLevelTokenizer``); importing ``intro2llm`` itself loads nothing heavy.
"""

__version__ = "0.1.0"
