"""Child process of :func:`scope_guard.reader.template_render.render_bounded`: renders one chat
template under CPU-time and memory limits. Reads a JSON request on stdin, writes a JSON answer
on stdout. Imports nothing of scope-guard, torch or the model: only transformers' renderer."""

from __future__ import annotations

import json
import resource
import sys


def main() -> None:
    request = json.loads(sys.stdin.read())
    cpu, memory = int(request["cpu_seconds"]), int(request["memory_bytes"])
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    from transformers.utils.chat_template_utils import render_jinja_template

    try:
        rendered = render_jinja_template(
            conversations=[request["messages"]],
            chat_template=request["template"],
            **request["special_tokens"],
        )
        text = rendered[0][0]  # (one text per conversation, generation indices)
    except MemoryError:
        answer = {"error": "it needs more memory than a chat template is allowed"}
    except Exception as exc:  # jinja's own error types; reported to the parent as text
        answer = {"error": f"{type(exc).__name__}: {exc}"}
    else:
        if not isinstance(text, str):
            answer = {"error": f"it rendered {type(text).__name__}, expected str"}
        elif len(text) > int(request["max_chars"]):
            answer = {"error": f"it rendered {len(text):,} characters for one short exchange"}
        else:
            answer = {"text": text}
    sys.stdout.write(json.dumps(answer))


if __name__ == "__main__":
    main()
