"""The reader: Gemma 2 / Gemma 3 activations for the response tokens of an exchange."""

from scope_guard.reader.exchange import EncodedExchange, ExchangeEncoder
from scope_guard.reader.miniature import MINIATURE_ID, MINIATURE_LABEL, miniature_model_path
from scope_guard.reader.reader import Reader, ReaderInfo
from scope_guard.reader.reading import Reading
from scope_guard.reader.surprisal import TokenSurprisal

__all__ = [
    "MINIATURE_ID",
    "MINIATURE_LABEL",
    "EncodedExchange",
    "ExchangeEncoder",
    "Reader",
    "ReaderInfo",
    "Reading",
    "TokenSurprisal",
    "miniature_model_path",
]
