"""Retrieval (docs/design.md §5): sign dictionaries bound to a tokenizer, matchers for arbitrary text, prompt building.

``soke dict build | import | match | info`` (:mod:`.cli`) makes and inspects dictionaries;
:class:`soke_lightning.callbacks.retrieval.RetrievalCallback` injects the prompts during training and evaluation.
"""

from soke_lightning.retrieval.dictionary import (
    OFFICIAL_IMPORT_HASH,
    DictionaryError,
    DictionaryMismatchError,
    SignDictionary,
    add_form_aliases,
    build_dictionary,
    import_word2code,
    normalize_word,
)
from soke_lightning.retrieval.matcher import (
    FUNCTION_WORDS,
    INFLECTION_SUFFIXES,
    INFLECTIONS,
    MATCHERS,
    Match,
    RetrievedEntry,
    SokeSubstringMatcher,
    WordMatcher,
    build_prompt,
    content_coverage,
    get_matcher,
    inflection_stems,
    retrieve,
    separator_texts,
    tokenize,
)

__all__ = [
    "FUNCTION_WORDS", "INFLECTIONS", "INFLECTION_SUFFIXES", "MATCHERS", "OFFICIAL_IMPORT_HASH", "DictionaryError",
    "DictionaryMismatchError", "Match", "RetrievedEntry", "SignDictionary", "SokeSubstringMatcher", "WordMatcher",
    "add_form_aliases", "build_dictionary", "build_prompt", "content_coverage", "get_matcher", "import_word2code",
    "inflection_stems", "normalize_word", "retrieve", "separator_texts", "tokenize",
]
