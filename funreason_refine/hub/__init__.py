"""The Hugging Face Hub: input read from a dataset pinned to a commit, dataset folders with a card, push.

Everything here that talks to the Hub imports huggingface_hub lazily (client.py), so that the rest of
the package, and ``refine --help``, never pay for it; it is the extra ``funreason-refine[hub]``.
"""
