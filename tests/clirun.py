"""Run one `adminkb` area through the real command parser, without main()'s error handling."""

from adminkb.cli import build_parser


def run_area(area: str, *arguments: str) -> int:
    """Parse `adminkb AREA ARGUMENTS...` and return the handler's exit status.

    Errors the handler raises (InputError, say) propagate, so tests can assert on them; main()
    would turn them into an exit status and a message instead.
    """
    parsed = build_parser().parse_args([area, *arguments])
    return parsed.handler(parsed)
