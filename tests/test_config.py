from pathlib import Path

import pytest

from funreason_refine.config import load_pipeline
from funreason_refine.errors import ConfigError
from tests.conftest import write_jsonl, xlam_row


def problems(path):
    with pytest.raises(ConfigError) as info:
        load_pipeline(path)
    return info.value.problems


def test_defaults_run_the_builtin_stages_in_the_papers_order(tmp_pipeline):
    pipeline, folder = tmp_pipeline([xlam_row()])
    loaded = load_pipeline(pipeline)
    # the paper's five, after the conversation checks (which single-turn records skip)
    names = ["conversation", "classification", "query_tool", "cot", "function_params", "format"]
    assert [s.name for s in loaded.stages] == names
    assert [s.on_fail for s in loaded.stages] == [
        "discard",
        "discard",
        "discard",
        "discard",
        "regenerate",
        "regenerate",
    ]
    assert loaded.output_dir == folder
    assert loaded.input.path == pipeline.parent / "in.jsonl"


def test_every_problem_is_reported_at_once_naming_file_entry_and_fix(tmp_path):
    write_jsonl(tmp_path / "in.jsonl", [xlam_row()])
    path = tmp_path / "p.toml"
    path.write_text("""
[input]
path = "missing.jsonl"
[output]
dir = "run"
[[stages]]
name = "clasification"
[[stages]]
name = "cot"
required = "sometimes"
[[stages]]
name = "format"
colour = "blue"
[[stages]]
name = "function_params"
on_fail = "drop"
""")
    found = problems(path)
    assert len(found) == 5  # every problem in one go: the file's keys, unknown stages and stage keys
    text = "\n".join(found)
    assert all(p.startswith(str(path)) for p in found)
    assert "[input] key 'path': file" in text and "missing.jsonl not found" in text
    assert "#1 (name = 'clasification'): no such stage; did you mean 'classification'?" in text
    assert "#2 (name = 'cot') key 'required'" in text
    assert "#3 (name = 'format') key 'colour': Extra inputs are not permitted" in text
    assert "[[stages]] #4 (name = 'function_params') key 'on_fail'" in text and "'drop'" in text


def test_problems_in_the_file_and_in_its_stages_are_reported_together(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text('[input]\npath = "in.jsonl"\nformt = "xlam"\n[[stages]]\nname = "cott"\n')
    text = "\n".join(problems(path))
    assert "[input] key 'formt': Extra inputs are not permitted" in text
    assert "#1 (name = 'cott'): no such stage; did you mean 'cot'?" in text


def test_the_output_folder_defaults_to_runs_beside_the_pipeline(tmp_path):
    write_jsonl(tmp_path / "in.jsonl", [xlam_row()])
    path = tmp_path / "weather.toml"
    path.write_text('[input]\npath = "in.jsonl"\n')
    assert load_pipeline(path).output_dir == tmp_path / "runs" / "weather"


@pytest.mark.parametrize(
    "text, words",
    [
        (
            '[input]\npath = "in.jsonl"\n[output]\ndir = "run"\n[outptu]\n',
            "[outptu]: Extra inputs are not permitted (remove it",
        ),
        ('[input]\npath = "in.jsonl"\n[output]\nfolder = "r"\n', "[output] key 'folder': Extra inputs"),
        ('[input]\npath = "in.jsonl"\nformat = "csv"\n[output]\ndir = "r"\n', "[input] key 'format'"),
        ("[input\npath = 1", "not valid TOML"),
        (
            '[input]\npath = "in.jsonl"\n[output]\ndir = "r"\n[[stages]]\nname = "cot"\n[[stages]]\nname = "cot"\n',
            "stage listed twice",
        ),
    ],
)
def test_single_problems(tmp_path, text, words):
    write_jsonl(tmp_path / "in.jsonl", [xlam_row()])
    path = tmp_path / "p.toml"
    path.write_text(text)
    assert any(words in p for p in problems(path)), problems(path)


def test_missing_pipeline_file(tmp_path):
    assert "pipeline file not found" in problems(tmp_path / "nope.toml")[0]


def test_config_hash_changes_with_stage_config_not_with_output(tmp_pipeline, tmp_path):
    pipeline, _ = tmp_pipeline([xlam_row()], stages='[[stages]]\nname = "cot"\n')
    first = load_pipeline(pipeline).config_hash
    assert load_pipeline(pipeline, out_dir=tmp_path / "elsewhere").config_hash == first
    pipeline.write_text(pipeline.read_text() + "required = true\n")
    assert load_pipeline(pipeline).config_hash != first


def test_eval_sets_are_named_by_their_whole_path_however_the_pipeline_was_given(tmp_path, monkeypatch):
    # A contamination discard names its eval set: "examples/quickstart/eval_set.json" from a relative
    # pipeline path, its absolute path in a shard, so merged shards differed from a one-process run.
    (tmp_path / "eval.jsonl").write_text('{"query": "q", "answers": []}\n')  # an eval set in a format (xlam)
    (tmp_path / "in.jsonl").write_text("")
    (tmp_path / "p.toml").write_text('[input]\npath = "in.jsonl"\n[audit]\neval_sets = ["eval.jsonl"]\n')
    monkeypatch.chdir(tmp_path.parent)
    relative = load_pipeline(Path(tmp_path.name) / "p.toml")
    assert relative.audit.eval_sets == [tmp_path.resolve() / "eval.jsonl"]
    assert load_pipeline(tmp_path / "p.toml").audit.eval_sets == relative.audit.eval_sets


def test_only_the_packages_own_stages_are_trusted_to_return_valid_records(register_stage, tmp_path):
    # A plugin's changed record is validated at the stage boundary; the built-in stages' are not, which
    # cost 4% of a rules-only run (their records are held valid by their own tests).
    from funreason_refine import Stage, Verdict

    class Shout(Stage):
        name = "shout"
        description = "Upper-cases the query."

        def check(self, record):
            return Verdict.passed(record=record.model_copy(update={"query": record.query.upper()}))

    register_stage(Shout)
    (tmp_path / "in.jsonl").write_text("")
    (tmp_path / "p.toml").write_text(
        '[input]\npath = "in.jsonl"\n[[stages]]\nname = "classification"\n[[stages]]\nname = "shout"\n'
    )
    stages = load_pipeline(tmp_path / "p.toml").stages
    assert [(s.name, s.trusted) for s in stages] == [("classification", True), ("shout", False)]


def test_a_judge_that_no_stage_asks_is_said_before_the_run_and_the_run_is_rules_only(tmp_path):
    from funreason_refine.config import load_pipeline
    from tests.conftest import refine, write_jsonl, xlam_row

    write_jsonl(tmp_path / "in.jsonl", [xlam_row("a")])
    (tmp_path / "p.toml").write_text(
        '[input]\npath = "in.jsonl"\n[output]\ndir = "run"\n[judge]\nmodel = "openai/x"\n'
        '[[stages]]\nname = "classification"\njudge = false\n[[stages]]\nname = "format"\njudge = false\n'
    )
    loaded = load_pipeline(tmp_path / "p.toml")
    assert loaded.judging is None
    (warning,) = loaded.warnings
    assert "[judge] openai/x: no stage asks it (none of classification, format has a judge" in warning
    for command in ("validate", "run"):
        said = " ".join(refine(command, tmp_path / "p.toml").split())
        assert "warning: " in said and "[judge] openai/x: no stage asks it" in said, command
    (tmp_path / "p.toml").write_text((tmp_path / "p.toml").read_text().replace("judge = false\n", ""))
    assert load_pipeline(tmp_path / "p.toml").warnings == []


def test_a_copied_stage_spec_goes_in_stage_specs_dir_not_in_prompt_file(tmp_path):
    import pytest

    from funreason_refine.config import load_pipeline
    from funreason_refine.errors import ConfigError
    from tests.conftest import REPO, write_jsonl, xlam_row

    write_jsonl(tmp_path / "in.jsonl", [xlam_row("a")])
    (tmp_path / "specs").mkdir()
    spec = (REPO / "stage_specs" / "function_params.toml").read_text()
    (tmp_path / "specs" / "function_params.toml").write_text(spec.replace("===== END =====", "===== END (mine) ====="))
    top = '[input]\npath = "in.jsonl"\n[judge]\nmodel = "openai/x"\n[[stages]]\nname = "function_params"\n'
    (tmp_path / "p.toml").write_text(top + 'prompt_file = "specs/function_params.toml"\n')
    with pytest.raises(ConfigError, match="is a stage spec .* name that folder with stage_specs_dir"):
        load_pipeline(tmp_path / "p.toml")
    (tmp_path / "p.toml").write_text('stage_specs_dir = "specs"\n' + top)
    (stage,) = load_pipeline(tmp_path / "p.toml").stages
    assert "===== END (mine) =====" in stage.judge.template


def test_a_stage_not_found_while_installed_plugins_are_off_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("FUNREASON_REFINE_NO_PLUGINS", "1")
    path = tmp_path / "p.toml"
    path.write_text('[input]\npath = "in.jsonl"\n[[stages]]\nname = "max_calls"\n')
    text = "\n".join(problems(path))
    assert "no such stage; installed plugins are not loaded (FUNREASON_REFINE_NO_PLUGINS is set)" in text


def test_a_prompt_file_or_stage_spec_that_is_not_utf8_is_one_line_naming_the_file_and_byte(tmp_path):
    # Both were a UnicodeDecodeError traceback out of validate and run.
    from tests.conftest import refine

    write_jsonl(tmp_path / "in.jsonl", [xlam_row("a")])
    (tmp_path / "prompt.txt").write_bytes("Check {query} é\n".encode("latin-1"))
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "cot.toml").write_bytes('name = "cot"\nprompt = "Check {query} é"\n'.encode("latin-1"))
    top = '[input]\npath = "in.jsonl"\n[judge]\nmodel = "openai/x"\n'
    (tmp_path / "p.toml").write_text(top + '[[stages]]\nname = "cot"\nprompt_file = "prompt.txt"\n')
    said = refine("validate", tmp_path / "p.toml", code=1)
    assert "Traceback" not in said
    assert (
        f"p.toml: [[stages]] #1 (name = 'cot') key 'prompt_file': {tmp_path / 'prompt.txt'} is not UTF-8 (byte 14): "
        "save it as UTF-8" in " ".join(said.split())
    )
    (tmp_path / "p.toml").write_text('stage_specs_dir = "specs"\n' + top)
    assert problems(tmp_path / "p.toml") == [
        f"{tmp_path / 'p.toml'}: key 'stage_specs_dir': {tmp_path / 'specs' / 'cot.toml'} is not UTF-8 (byte 37): "
        "save it as UTF-8"
    ]


def test_a_stages_own_generator_that_no_failing_record_reaches_is_refused_like_an_unused_generate(tmp_path):
    # A stage's generate = {...} under on_fail = "discard" was dropped in silence: validate said ok, and the
    # records it was meant to rewrite were discarded.
    write_jsonl(tmp_path / "in.jsonl", [xlam_row("a")])
    stage = '[[stages]]\nname = "cot"\ngenerate = {model = "openai/x"}\n'
    (tmp_path / "p.toml").write_text('[input]\npath = "in.jsonl"\n' + stage)
    assert problems(tmp_path / "p.toml") == [
        f"{tmp_path / 'p.toml'}: [[stages]] #1 (name = 'cot') key 'generate': no record is rewritten with it, as "
        "on_fail is 'discard'. To rewrite the cot of failing records, set on_fail = \"regenerate\" in this table; "
        "else remove generate"
    ]
    (tmp_path / "p.toml").write_text('[input]\npath = "in.jsonl"\n' + stage + 'on_fail = "regenerate"\n')
    (cot,) = load_pipeline(tmp_path / "p.toml").stages
    assert cot.generator is not None and cot.generator.model == "openai/x"


def test_a_stage_that_asks_for_a_judge_it_cannot_have_is_said_before_the_run(tmp_path):
    # prompt = "..." or judge = true without a [judge] table ran rules-only without a word.
    write_jsonl(tmp_path / "in.jsonl", [xlam_row("a")])
    stages = (
        '[[stages]]\nname = "conversation"\njudge = true\n'
        '[[stages]]\nname = "cot"\njudge = true\n'
        '[[stages]]\nname = "format"\nprompt = "Is {answer} right?"\n'
    )
    (tmp_path / "p.toml").write_text('[input]\npath = "in.jsonl"\n' + stages)
    loaded = load_pipeline(tmp_path / "p.toml")
    assert loaded.judging is None
    assert [" ".join(w.split()[1:6]) for w in loaded.warnings] == [
        "[[stages]] #1 (name = 'conversation'):",
        "[[stages]] #2 (name = 'cot'):",
        "[[stages]] #3 (name = 'format'):",
    ]
    said = "\n".join(loaded.warnings)
    assert "it has judge = true but no prompt to ask a judge with (no stage spec names conversation)" in said
    assert "it has judge = true but no judge to ask (no [judge] table, no judge table of its own)" in said
    assert "it has prompt but no judge to ask" in said and "add a [judge] table or run with --judge-model" in said
    (tmp_path / "p.toml").write_text('[input]\npath = "in.jsonl"\n[judge]\nmodel = "openai/x"\n' + stages)
    loaded = load_pipeline(tmp_path / "p.toml")
    assert [s.name for s in loaded.stages if s.judge is not None] == ["cot", "format"]
    (warning,) = loaded.warnings
    assert "(name = 'conversation'): it has judge = true but no prompt" in warning


def test_a_key_of_the_wrong_type_is_said_in_one_line_without_pydantics_internals(tmp_path):
    # [input] path = 5 printed key 'path.lax-or-strict[lax=union[json-or-python[...]]]' and a second line for
    # the hf:// reading; judge = 5 a line for each of bool and dict[str,any].
    write_jsonl(tmp_path / "in.jsonl", [xlam_row("a")])
    (tmp_path / "p.toml").write_text(
        'stage_specs_dir = 5\n[input]\npath = 5\nanswers = 3\n[judge]\nmodel = "openai/x"\nextra = {api_key = "k"}\n'
        '[[stages]]\nname = "cot"\njudge = 5\ngenerate = "yes"\njudges = [3]\nprompt_file = 4\n'
    )
    at = f"{tmp_path / 'p.toml'}:"
    assert problems(tmp_path / "p.toml") == [
        f"{at} [input] key 'path': a path (text) is wanted (got 5)",
        f"{at} [input] key 'answers': a path (text) is wanted (got 3)",
        f"{at} [judge] key 'extra': 'api_key' looks like a credential; keys come from the environment "
        "(OPENAI_API_KEY, ANTHROPIC_API_KEY, ...), never from the pipeline file (got {'api_key': 'k'})",
        f"{at} key 'stage_specs_dir': a path (text) is wanted (got 5)",
        f"{at} [[stages]] #1 (name = 'cot') key 'judge': true, false or a table ({{model = ...}}) is wanted (got 5)",
        f"{at} [[stages]] #1 (name = 'cot') key 'judges.0': a table is wanted (got 3)",
        f"{at} [[stages]] #1 (name = 'cot') key 'prompt_file': a path (text) is wanted (got 4)",
        f"{at} [[stages]] #1 (name = 'cot') key 'generate': true, false or a table ({{model = ...}}) is wanted "
        "(got 'yes')",
    ]


def test_a_wrong_common_key_of_a_stage_hides_none_of_its_other_problems_and_adds_none(tmp_path):
    # A wrong on_fail or vote dropped the whole [[stages]] table: its misspelt own key and its judges went unsaid.
    write_jsonl(tmp_path / "in.jsonl", [xlam_row("a")])
    (tmp_path / "p.toml").write_text(
        '[input]\npath = "in.jsonl"\n[judge]\nmodel = "openai/x"\n[generate]\nmodel = "openai/x"\n'
        '[[stages]]\nname = "cot"\non_fail = "drop"\nrequird = true\ngenerate = {temperature = 0.3}\n'
        '[[stages]]\nname = "format"\nvote = "most"\njudges = [{model = 5}]\n'
        '[[stages]]\nname = "my_scorer"\nscorer = 5\n'
    )
    found = [p.removeprefix(f"{tmp_path / 'p.toml'}: [[stages]] ") for p in problems(tmp_path / "p.toml")]
    assert sorted(found) == [
        "#1 (name = 'cot') key 'on_fail': Input should be 'discard', 'regenerate', 'hard_pool' or 'truncate' "
        "(got 'drop')",
        "#1 (name = 'cot') key 'requird': Extra inputs are not permitted (remove it or check its spelling; this "
        "stage's own keys: required, forbid_uncalled_functions)",
        "#2 (name = 'format') key 'judges[0].model': Input should be a valid string",
        "#2 (name = 'format') key 'vote': Input should be 'unanimous' or 'majority' (got 'most')",
        "#3 (name = 'my_scorer') key 'scorer': a table is wanted (got 5)",
    ]  # and not: [generate] unused, cot's generate under on_fail discard, no stage named my_scorer


def test_a_wrong_judge_table_is_said_once_not_again_by_each_stage_table_over_it(tmp_path):
    # [judge] timeout = 0 also gave "key 'judge.model': Field required (set [judge] model ...)" for a stage's
    # judge = {temperature = 0.5}, though [judge] model was set; and a wrong [input] did the same.
    write_jsonl(tmp_path / "in.jsonl", [xlam_row("a")])
    stages = (
        '[[stages]]\nname = "cot"\njudge = {temperature = 0.5}\n'
        '[[stages]]\nname = "format"\njudges = [{temperature = 0.5}, {model = "openai/y"}]\n'
        '[[stages]]\nname = "mine"\nspec = {description = "Mine.", prompt = "Is {query} fine?"}\n'
    )
    path = tmp_path / "p.toml"
    path.write_text('[input]\npath = "in.jsonl"\n[judge]\nmodel = "openai/x"\ntimeout = 0\n' + stages)
    assert problems(path) == [f"{path}: [judge] key 'timeout': Input should be greater than 0 (got 0)"]
    path.write_text('[input]\npath = 5\n[judge]\nmodel = "openai/x"\n' + stages)
    assert problems(path) == [f"{path}: [input] key 'path': a path (text) is wanted (got 5)"]
    path.write_text('[input]\npath = "in.jsonl"\n' + stages.replace('"mine"', '"mine"\njudge = false'))
    assert sorted(problems(path)) == [
        f"{path}: [[stages]] #1 (name = 'cot') key 'judge.model': Field required (set [judge] model or give model "
        "in this table)",
        f"{path}: [[stages]] #2 (name = 'format') key 'judges[0].model': Field required (set [judge] model or give "
        "model in this table)",
        f"{path}: [[stages]] #3 (name = 'mine'): a judge-only stage (a spec, no code) needs a judge: add a [judge] "
        "table or run with --judge-model",
    ]


def test_generate_true_without_a_generate_table_is_refused(tmp_path):
    # generate = true took its model from [generate]; with none, it was dropped in silence and the records it was
    # meant to rewrite were discarded.
    write_jsonl(tmp_path / "in.jsonl", [xlam_row("a")])
    stage = '[[stages]]\nname = "cot"\non_fail = "regenerate"\ngenerate = true\n'
    (tmp_path / "p.toml").write_text('[input]\npath = "in.jsonl"\n' + stage)
    assert problems(tmp_path / "p.toml") == [
        f"{tmp_path / 'p.toml'}: [[stages]] #1 (name = 'cot') key 'generate': true, but the file has no [generate] "
        "table to take the model from: add [generate] model = ..., or give generate = {model = ...} in this table"
    ]
    (tmp_path / "p.toml").write_text('[input]\npath = "in.jsonl"\n' + stage.replace('on_fail = "regenerate"\n', ""))
    (problem,) = problems(tmp_path / "p.toml")
    assert "key 'generate': no record is rewritten with it, as on_fail is 'discard'" in problem
    top = '[generate]\nmodel = "openai/x"\nprompt = "Write a CoT for {query}"\n'
    (tmp_path / "p.toml").write_text('[input]\npath = "in.jsonl"\n' + top + stage)
    (cot,) = load_pipeline(tmp_path / "p.toml").stages
    assert cot.generator is not None and cot.generator.model == "openai/x"
