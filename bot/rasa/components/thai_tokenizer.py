"""A Rasa 3 tokenizer that segments Thai into words with PyThaiNLP (newmm, offline).

Thai is written without spaces between words, so Rasa's WhitespaceTokenizer sees a whole
sentence as one token. This component splits Thai runs with PyThaiNLP's dictionary-based
``newmm`` engine and leaves Latin words, numbers and case numbers (``OS-2026-000123``) whole,
so mixed messages ("ต่อ id card ยังไง") tokenize sensibly.

Runs inside bot/.venv (Python 3.10, Rasa 3.6); the main app never imports it.
"""

from __future__ import annotations

import re
from typing import Any

from pythainlp.tokenize import word_tokenize
from rasa.engine.graph import ExecutionContext
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.tokenizers.tokenizer import Token, Tokenizer
from rasa.shared.nlu.training_data.message import Message

# Thai script (letters, vowels, tone marks, digits) versus everything else.
_THAI_RUN = re.compile(r"[\u0E00-\u0E7F]+")
# Non-Thai words: case numbers, e-mail-ish words, numbers, Latin words.
_OTHER_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@/-]*[A-Za-z0-9]|[A-Za-z0-9]|[^\s\u0E00-\u0E7F]")


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_TOKENIZER, is_trainable=False)
class ThaiTokenizer(Tokenizer):
    """Word tokenizer for Thai (PyThaiNLP newmm) with whitespace splitting for other scripts."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        """Returns the component's default config."""
        return {
            "intent_tokenization_flag": False,
            "intent_split_symbol": "_",
            "token_pattern": None,
            "prefix_separator_symbol": None,
            # PyThaiNLP engine; newmm needs no download and no network.
            "engine": "newmm",
            # Drop one-character punctuation tokens such as "?" and "!".
            "drop_punctuation": True,
        }

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> ThaiTokenizer:
        """Creates the component (see Rasa's GraphComponent)."""
        return cls(config)

    @staticmethod
    def required_packages() -> list[str]:
        """Python packages this component needs."""
        return ["pythainlp"]

    def tokenize(self, message: Message, attribute: str) -> list[Token]:
        """Splits the attribute's text into tokens that carry their character offsets."""
        text = message.get(attribute) or ""
        tokens: list[Token] = []
        for chunk in re.finditer(r"\S+", text):
            tokens.extend(self._tokenize_chunk(chunk.group(), chunk.start()))
        if not tokens:
            # Rasa needs at least one token (e.g. a message that is only "?").
            tokens = [Token(text, 0)]
        return self._apply_token_pattern(tokens)

    def _tokenize_chunk(self, chunk: str, offset: int) -> list[Token]:
        tokens: list[Token] = []
        position = 0
        for thai in _THAI_RUN.finditer(chunk):
            tokens.extend(self._other_tokens(chunk[position : thai.start()], offset + position))
            start = offset + thai.start()
            for word in word_tokenize(thai.group(), engine=self._config["engine"]):
                if word.strip():
                    tokens.append(Token(word, start))
                start += len(word)
            position = thai.end()
        tokens.extend(self._other_tokens(chunk[position:], offset + position))
        return tokens

    def _other_tokens(self, text: str, offset: int) -> list[Token]:
        tokens = []
        for match in _OTHER_WORD.finditer(text):
            word = match.group()
            if self._config["drop_punctuation"] and len(word) == 1 and not word.isalnum():
                continue
            tokens.append(Token(word, offset + match.start()))
        return tokens
