"""Text an attacker controls (a value quoted in an error, a manifest line) as the CI examples must show it:
inert in GitHub's runner log, in GitHub's rendered markdown and in GitLab's quick actions."""

from __future__ import annotations

import re

import cmarkgfm

# An error message as an attacker would write it: every line tries to be something other than text.
HOSTILE = ("Error: manifests/x.yaml:3: group: bad value '``` </code></pre><img src=x onerror=alert(1)>'\n"
           "::error title=Build passed::spoofed\n"
           "  ::add-mask::nothing\n"
           "##[set-output name=exitcode;]0\n"
           "/approve\n"
           "@octo-org/admins and @someone please merge <script>alert(1)</script> [x](https://evil.example)\n"
           "````` five backticks ![img](https://evil.example/i.png)\r/merge\n")


def assert_inert_in_comment(body: str, hostile: str) -> None:
    """`hostile` sits in `body` as the text of one code block, whatever GitHub's renderer and GitLab's quick
    actions make of the rest: no element but the block comes from it, and no line of it starts a line."""
    html = cmarkgfm.github_flavored_markdown_to_html(body)
    blocks = re.findall(r"<pre><code>(.*?)</code></pre>", html, re.S)
    assert len(blocks) == 1, html
    shown = blocks[0].replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace("&amp;", "&")
    assert shown == "".join(f"  {line}\n" for line in hostile.replace("\r", "\\r").splitlines())
    outside = html.replace(blocks[0], "")
    for made in ("<img", "<script", "evil.example", "@someone", "@octo-org"):
        assert made not in outside, (made, html)
    assert not [line for line in body.splitlines() if line.startswith(("/", "@"))]
    longest = max(len(run) for run in re.findall("`+", hostile))
    fences = [line for line in body.splitlines() if set(line) == {"`"}]
    assert fences and all(len(fence) == longest + 1 for fence in fences)
