"""What a bearer token's text may be: the one rule for preflight (common.inputs) and for every
process that reads one (workers.controller.credentials). Light on purpose: it imports nothing, so
the config reader keeps the embedded cluster's hot-path commands free of logging libraries."""


def token_text(text: str) -> str:
    """A bearer token's text, stripped: one non-empty line without white space (a second line would
    reach the request's header). ValueError says what is wrong, never quoting the text."""
    token = text.strip()
    if not token:
        raise ValueError("is empty")
    if "\n" in token or "\r" in token:
        raise ValueError("holds more than one line; a token file holds the token alone, on one line")
    if any(c.isspace() for c in token):
        raise ValueError("holds white space; a bearer token is one word")
    return token
