"""Every user-facing sentence of the tool, in Chinese and English.

``t(key, lang, **params)`` formats one entry. Keys are grouped by the part of
the tool that says them. A missing key or parameter is a bug in the tool and
fails loudly in its tests (``tests/cli/test_messages.py``).
"""

from __future__ import annotations

import os

MESSAGES: dict[str, tuple[str, str]] = {
    # -- catalog (course author errors) -----------------------------------
    "catalog.missing": ("找不到课程目录文件 {file}；安装可能不完整，请重新安装 intro2llm。",
                        "course catalogue {file} not found; the install looks incomplete, reinstall intro2llm."),
    "catalog.bad_toml": ("{file} 不是合法的 TOML：{error}（作者错误：修正该文件）。",
                         "{file} is not valid TOML: {error} (author error: fix that file)."),
    "catalog.bad_field": ("{file} 的字段 `{field}` 有误：{problem}（作者错误：修正该文件）。",
                          "{file}: field `{field}` is wrong: {problem} (author error: fix that file)."),
    "catalog.duplicate_number": ("{a} 与 {b} 的课程编号相同；每课编号必须唯一。",
                                 "{a} and {b} share a lesson number; numbers must be unique."),
    # -- lessons and paths -------------------------------------------------
    "lesson.unknown": ("没有课程 `{given}`；你是不是想输入 `{suggestion}`？（`llm-course list` 列出全部课程）",
                       "no lesson `{given}`; did you mean `{suggestion}`? (`llm-course list` shows them all)"),
    "lesson.locked": ("{lesson} 尚未解锁：先完成 {missing}。",
                      "{lesson} is locked: complete {missing} first."),
    "lesson.not_on_path": ("{lesson} 不在你的学习路线 `{path}` 上（`llm-course status` 查看你的课程）。",
                           "{lesson} is not on your learning path `{path}` (`llm-course status` lists yours)."),
    "lesson.provided": ("{lesson} 由参考实现提供（不在你的路线上），无需自己完成。",
                        "{lesson} is provided by the reference (not on your path); nothing to do there."),
    "lesson.planned": ("{lesson} 的内容还在编写中，敬请期待；先继续其他已发布的课程。",
                       "{lesson} is still being written; carry on with a published lesson meanwhile."),
    "lesson.planned_tag": ("编写中", "coming soon"),
    "lesson.status_ready": ("已发布", "published"),
    "lesson.status_planned": ("编写中", "coming soon"),
    "lesson.no_tests": ("{lesson} 缺少测试文件 {file}（作者错误）。",
                        "{lesson} has no test file {file} (author error)."),
    "path.unknown": ("没有学习路线 `{given}`；可选：{choices}。",
                     "no learning path `{given}`; choose one of: {choices}."),
    "lang.unknown": ("不支持的语言 `{given}`；可选 zh 或 en。", "unknown language `{given}`; use zh or en."),
    # -- progress file -----------------------------------------------------
    "progress.missing": ("{home} 下还没有课程工作区：先运行 `llm-course init`。",
                         "no course workspace under {home} yet: run `llm-course init` first."),
    "progress.damaged": ("进度文件 {file} 已损坏（{problem}）；文件保持原样未被改动，请手动修复或移走后重新 `llm-course init`。",
                         "progress file {file} is damaged ({problem}); it was left untouched: fix it by hand, or move it away and run `llm-course init`."),
    "progress.version": ("进度文件 {file} 的 schema_version 为 {found}，本版本需要 {expected}；请升级 llm-course 或迁移该文件。",
                         "progress file {file} has schema_version {found}, this version needs {expected}; upgrade llm-course or migrate the file."),
    "progress.locked": ("进度文件 {file} 正被另一个 llm-course 进程使用；等它结束后再试。",
                        "progress file {file} is in use by another llm-course process; try again when it finishes."),
    # -- init / start / reset / solution ----------------------------------
    "init.ask_path": ("选择学习路线", "choose a learning path"),
    "init.exists": ("这里已经初始化过课程（{file}）；你的进度保持不变。",
                    "a course is already set up here ({file}); your progress is unchanged."),
    "init.done": ("课程已就绪：主目录 {home}，路线 `{path}`，工作区 {workspace}/。",
                  "course ready: home {home}, path `{path}`, workspace {workspace}/."),
    "start.done": ("开始 {lesson}：{title}", "started {lesson}: {title}"),
    "start.target": ("  在 {path} 中实现：{symbols}", "  implement in {path}: {symbols}"),
    "start.read": ("阅读讲义：`llm-course show {lesson}`（{readme}）；完成后运行 `llm-course check`。",
                   "read the handout: `llm-course show {lesson}` ({readme}); then run `llm-course check`."),
    "start.reset_offer": ("以上文件有你的修改，已保留；若要从头开始，运行 `llm-course reset {lesson}`（会先备份）。",
                          "the files above hold your changes and were kept; to start over run `llm-course reset {lesson}` (it backs up first)."),
    "write.written": ("  写入 {path}", "  wrote {path}"),
    "write.provided": ("  提供参考实现 {path}", "  provided reference module {path}"),
    "write.kept": ("  保留了你修改过的 {path}（未覆盖）", "  kept your changed {path} (not overwritten)"),
    "write.backup": ("  旧文件已备份到 {path}", "  previous files backed up to {path}"),
    "reset.confirm": ("重置 {lesson}？你的文件会先备份。", "reset {lesson}? Your files are backed up first."),
    "reset.done": ("{lesson} 已重置为全新的桩代码。", "{lesson} is back to fresh stubs."),
    "reset.not_started": ("{lesson} 还没有开始，无需重置；运行 `llm-course start {lesson}`。",
                          "{lesson} has not been started, nothing to reset; run `llm-course start {lesson}`."),
    "solution.locked": ("完成 {lesson} 后才能查看参考实现；确实需要可加 --force（会记录在进度文件中）。",
                        "the reference for {lesson} unlocks when you complete it; --force shows it now (recorded in your progress)."),
    "solution.recorded": ("已在进度文件中记录：提前查看了 {lesson} 的参考实现。",
                          "recorded in your progress: the {lesson} reference was viewed early."),
    "show.no_readme": ("{lesson} 的讲义还没有写好。", "the handout of {lesson} is not written yet."),
    "workspace.missing": ("工作区 {path} 不存在；恢复它，或在新目录中运行 `llm-course init`。",
                          "workspace {path} does not exist; restore it, or run `llm-course init` in a new folder."),
    # -- check -------------------------------------------------------------
    "check.not_started": ("{lesson} 还没有开始：先运行 `llm-course start {lesson}`。",
                          "{lesson} has not been started: run `llm-course start {lesson}` first."),
    "check.bad_tier": ("没有测试层级 `{tier}`；可选：{choices}。", "no test tier `{tier}`; choose one of: {choices}."),
    "check.tier_title": ("{tier}：通过 {passed}/{total}（{seconds} 秒）", "{tier}: {passed}/{total} passed ({seconds} s)"),
    "check.location": ("位置：{location}", "at {location}"),
    "check.collection_error": ("测试文件无法加载", "the test file could not be loaded"),
    "check.basic_passed": ("{lesson} 基础测试全部通过！继续完成进阶测试。",
                           "{lesson} basic tier passed! On to the advanced tier."),
    "check.completed": ("{lesson} 完成！基础与进阶测试全部通过。", "{lesson} completed: basic and advanced tiers pass."),
    "check.stub_group": ("{symbol} 还是桩代码（{count} 个测试因此失败）", "{symbol} is still a stub: {count} test(s) stop there"),
    "check.more_failures": ("还有 {count} 个失败未列出；`-v` 显示全部", "{count} more failures not listed; `-v` shows them all"),
    "check.try_hint": ("卡住了？`llm-course hint` 给出针对第一个失败的提示；`-v` 显示完整报告。",
                       "stuck? `llm-course hint` aims a hint at the first failure; `-v` shows full reports."),
    "check.unlocked": ("已解锁 {lesson}：{title}", "unlocked {lesson}: {title}"),
    "tier.basic": ("基础测试", "basic tier"),
    "tier.advanced": ("进阶测试", "advanced tier"),
    "watch.waiting": ("正在监视 {path}，保存文件即重新检查（Ctrl+C 退出）…", "watching {path}; save to re-check (Ctrl+C to stop)…"),
    "watch.rerun": ("检测到修改，重新检查…", "change detected, checking again…"),
    "target.bad": ("无法确定 my_llm 指向哪里：{detail}", "cannot tell what my_llm should be: {detail}"),
    "runner.pytest_failed": ("pytest 无法运行 {lesson} 的测试（退出码 {code}）：{detail}",
                             "pytest could not run the tests of {lesson} (exit code {code}): {detail}"),
    # -- results: what a failing test tells the learner --------------------
    "result.stub": ("{symbol} 还是桩代码（尚未实现）。", "{symbol} is still a stub (not implemented yet)."),
    "result.syntax": ("语法错误：{error}，位于 {where}", "syntax error: {error} at {where}"),
    "result.timeout": ("超过 {seconds} 秒仍未结束：可能有死循环或算法太慢。",
                       "did not finish within {seconds} s: an endless loop, or an algorithm far too slow."),
    "result.system_exit": ("代码调用了 sys.exit({code})；测试中请用异常而不是退出进程。",
                           "the code called sys.exit({code}); raise an exception instead of exiting."),
    "result.recursion": ("递归过深（RecursionError）：检查递归的终止条件，或方法是否在调用自己。",
                         "recursion too deep (RecursionError): check the base case, or a method calling itself."),
    "result.assertion": ("断言失败。", "an assertion failed."),
    "result.import": ("无法导入你的模块：{error}", "your module could not be imported: {error}"),
    # -- comparisons in lesson tests (testkit) -----------------------------
    "diff.value": ("{what}：期望 {expected}，实际 {actual}", "{what}: expected {expected}, got {actual}"),
    "diff.not_sequence": ("{what}：应返回 list，实际返回 {type}", "{what}: should be a list, got {type}"),
    "diff.sequence": ("{what}：第 {index} 个元素不同：期望 {expected}，实际 {actual}\n  期望附近：{context_expected}\n  实际附近：{context_actual}",
                      "{what}: element {index} differs: expected {expected}, got {actual}\n  expected around it: {context_expected}\n  got around it:      {context_actual}"),
    "diff.length": ("{what}：长度不同：期望 {expected}，实际 {actual}（多出/缺少的部分：{extra}）",
                    "{what}: lengths differ: expected {expected}, got {actual} (extra/missing part: {extra})"),
    "diff.wrong_error": ("{what}：应抛出 {expected}，实际抛出 {actual}", "{what}: should raise {expected}, raised {actual}"),
    "diff.no_error": ("{what}：应抛出 {expected}，却正常返回了 {value}", "{what}: should raise {expected}, but returned {value}"),
    "diff.not_tensor": ("{what}：应返回 torch.Tensor，实际返回 {type}", "{what}: should be a torch.Tensor, got {type}"),
    "diff.shape": ("{what}：形状不对：期望 {expected}，实际 {actual}", "{what}: wrong shape: expected {expected}, got {actual}"),
    "diff.dtype": ("{what}：dtype 不对：期望 {expected}，实际 {actual}", "{what}: wrong dtype: expected {expected}, got {actual}"),
    "diff.nonfinite": ("{what}：出现 NaN/inf（第一个位于索引 {index}）", "{what}: NaN/inf values (first at index {index})"),
    "diff.values": ("{what}：{count}/{total} 个元素超出容差（atol={atol}, rtol={rtol}）；最离谱的在索引 {index}：期望 {expected}，实际 {actual}（差 {max_diff}）",
                    "{what}: {count}/{total} elements beyond tolerance (atol={atol}, rtol={rtol}); worst at index {index}: expected {expected}, got {actual} (difference {max_diff})"),
    # -- first divergence between the learner's model and the reference ----
    "divergence.values": ("第一个与参考实现不一致的子模块是 `{module}`（之前的模块都一致）：最大差 {max_diff}，位于索引 {index}；从这里查起。",
                          "the first submodule that differs from the reference is `{module}` (everything before it matches): largest difference {max_diff} at index {index}; start looking there."),
    "divergence.shape": ("第一个与参考实现不一致的子模块是 `{module}`：输出形状 {learner}，参考实现为 {reference}。",
                         "the first submodule that differs from the reference is `{module}`: output shape {learner}, reference {reference}."),
    # -- status / list / hints ---------------------------------------------
    "status.title": ("学习进度（路线：{path}）", "Progress (path: {path})"),
    "list.title": ("全部课程（先运行 `llm-course init` 选择路线）", "All lessons (run `llm-course init` to choose a path)"),
    "col.lesson": ("课程", "lesson"),
    "col.title": ("标题", "title"),
    "col.state": ("状态", "state"),
    "col.basic": ("基础", "basic"),
    "col.advanced": ("进阶", "advanced"),
    "col.hints": ("提示", "hints"),
    "col.stage": ("阶段", "stage"),
    "col.status": ("发布", "status"),
    "state.locked": ("未解锁", "locked"),
    "state.available": ("可开始", "available"),
    "state.in_progress": ("进行中", "in progress"),
    "state.basic_passed": ("基础已通过", "basic passed"),
    "state.completed": ("已完成", "completed"),
    "state.provided": ("参考提供", "provided"),
    "state.off_path": ("不在路线上", "not on path"),
    "next.start": ("下一步：`llm-course start {lesson}`", "next: `llm-course start {lesson}`"),
    "next.check": ("下一步：在工作区实现 {lesson} 的代码，然后 `llm-course check {lesson}`",
                   "next: implement {lesson} in your workspace, then `llm-course check {lesson}`"),
    "next.done": ("路线上的课程全部完成，恭喜！可以用 `llm-course train` 训练你自己的模型了。",
                  "every lesson on your path is complete, congratulations!"),
    "hint.title": ("提示 · {symbol} · 第 {level} 级（已看 {seen}/{total}）", "hint · {symbol} · level {level} ({seen}/{total} seen)"),
    "hint.none_left": ("{lesson} 的提示已全部看过；`llm-course check -v` 查看完整的失败报告。",
                       "you have seen every hint of {lesson}; `llm-course check -v` shows the full failure reports."),
    # -- author verify -----------------------------------------------------
    "verify.title": ("课程自检（参考实现全部通过 / 新桩全部失败 / 已知错误全部被捕获）",
                     "Lesson verification (reference passes / fresh stubs fail / known mistakes caught)"),
    "verify.reference": ("参考实现通过", "reference passes"),
    "verify.stubs": ("新桩失败", "stubs fail"),
    "verify.mistakes": ("错误被捕获", "mistakes caught"),
}


def default_lang() -> str:
    lang = os.environ.get("LLM_COURSE_LANG", "zh")
    return lang if lang in ("zh", "en") else "zh"


def t(key: str, lang: str | None = None, **params: object) -> str:
    """The message ``key`` in ``lang`` (default: $LLM_COURSE_LANG, else zh), formatted."""
    zh, en = MESSAGES[key]
    return (en if (lang or default_lang()) == "en" else zh).format(**params)
