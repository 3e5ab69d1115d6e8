"""Analyses of stored result rows: summary tables, `recommend` (the configuration to ship
under budgets) and `compare` (two runs, a change told from noise).

They sit below both front ends that present them, the HTML report (`workbench.report`)
and the notebook layer (`workbench.study`), and import neither.
"""
