"""The engine: the one path by which anything changes on a pyovl instance.

Every change (overlay.json, a dladm verb, `up-overlay` at boot, `down`) goes
through the same four steps:

  observe  facts.py   read what the kernel has: maps, links, attachments
  desire   intent.py  turn the declaration (ledger + change) into the wanted
                      state, checking everything against this host; a bad
                      input raises here, before anything changed
  plan     plan.py    diff facts (and the ledger, for what the kernel cannot
                      show) against the wanted state: typed actions in
                      fail-closed order
  apply    apply.py   run the actions one by one, journalled

declare.py holds the declaration model and the changes (pure functions:
declaration in, declaration out); ledger.py keeps only what cannot be
observed; engine.py ties the steps together, and is what the daemon hosts
while it runs (it is then the one writer; pyovl/daemon/writer.py decides
who runs a change). targets.py: map edits below the declaration
(modify-overlay, the `dp` verbs).
"""
