"""From a request to the token ids its model reads: the chat template (or a plain transcript for a base
model without one), checked against the model's context window."""

from __future__ import annotations

from engine.errors import PromptTooLong
from engine.request import GenerationRequest
from engine.weights.loader import LoadedModel


def build_prompt_ids(loaded: LoadedModel, request: GenerationRequest) -> list[int]:
    tokenizer = loaded.tokenizer
    if request.messages is not None:
        if loaded.info.has_chat_template:
            text = tokenizer.apply_chat_template(request.messages, tokenize=False, add_generation_prompt=True)
        else:  # a base model without a template: a plain transcript it can continue
            text = "".join(f"{m['role']}: {m['content']}\n" for m in request.messages) + "assistant:"
        return tokenizer(text, add_special_tokens=not loaded.info.has_chat_template)["input_ids"]
    return tokenizer(request.prompt)["input_ids"]


def prompt_ids_within_context(loaded: LoadedModel, request: GenerationRequest) -> list[int]:
    """The prompt's ids; raises PromptTooLong when they leave no room in the context window for a reply."""
    prompt_ids = build_prompt_ids(loaded, request)
    context = loaded.info.context_length
    if len(prompt_ids) >= context:
        raise PromptTooLong(
            f"The prompt is {len(prompt_ids):,} tokens, but {loaded.info.name} has a context window of "
            f"{context:,} tokens. Shorten the message or start a new conversation."
        )
    return prompt_ids
