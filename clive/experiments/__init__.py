"""The research loop: playbooks, the experiment loop with results.tsv and keep-or-discard, the git
workspace (checkpoints on refs/clive/*, the run branch), the playbook-driven policies, and ``run``.

May import every part below it (agent, session, terminal, safety); nothing below imports it."""
