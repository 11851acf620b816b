"""llm-course: the command-line tool of the intro2llm course.

Modules, one job each (see DESIGN.md):

- ``catalog``    lesson.toml / course.toml -> validated lesson specs, graph, paths
- ``progress``   the learner's progress TOML (atomic writes, lock, schema)
- ``stubgen``    reference source -> learner stubs (注释即实现)
- ``workspace``  writes stubs and provided modules into ``<workspace>/my_llm``
- ``targets``    makes ``import my_llm`` resolve to the workspace, the reference or stubs
- ``runner``     in-process pytest with a result plugin
- ``course``     the learner's actions (start, check, hint, reset, ...) built from the above
- ``views``      all terminal rendering (the only place that imports rich)
- ``commands``   one thin module per CLI command
"""

__version__ = "0.1.0"
