"""Workflow induction (pure engine code, no Textual): turning experiences into workflows.

- `prompt`: the LLM induction prompt (`induction = "llm"`)
- `parse`: reading a model's reply as real models write it
- `transcript`: `inductions/NNNN.json`, each LLM induction's prompt, reply and outcome
- `rules`: the deterministic offline inducer (`induction = "rule"`), whose rules the
  simulated model also applies
- `step`: a run's induction step, one at a time, committed to memory.json (imported
  by the run directly: it needs the state store)

Both routes give plain dicts (`title`, `description`, `steps`) that
`Memory.apply_induction` merges. Pass only the experiences to learn from
(normally the recent successes).
"""

from .parse import InductionParseError, ParsedInduction, parse_induction_reply
from .prompt import build_induction_messages
from .rules import abstract_command, command_kind, induce_rule
from .transcript import transcript, write_transcript

__all__ = [
    "InductionParseError", "ParsedInduction", "abstract_command", "build_induction_messages",
    "command_kind", "induce_rule", "parse_induction_reply", "transcript", "write_transcript",
]
