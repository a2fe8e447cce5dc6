"""The `distill run` workflow: a plan, its stages (collect, dataset, train, eval), compress and publish.

It sits above the rest of distill/ and above benchmarks/: it runs suites (benchmarks.suite_run) with the
teacher and the students, and trains with distill's data, trainer and student modules.
"""
