"""halluray.data: prompt loaders over local files (jsonl, csv, parquet, save_to_disk dirs) and the world's prompts."""

import json

import datasets
import pytest

from halluray.config import ConfigError, build_config
from halluray.data import LOADERS, load_prompts, prompts_for
from halluray.data.mmlu import answer_index, mcq_prompt
from halluray.data.text import first_sentence, split_sentences
from halluray.errors import InputError
from halluray.world.build import prompt_records, write_world
from halluray.world.entities import SPLITS


@pytest.fixture(autouse=True)
def _private_datasets_cache(tmp_path, monkeypatch):
    """`datasets` caches what it reads from data files; keep that cache inside the test's tmp dir."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


BIOS = [
    {"name": "Ada Lovelace", "text": "Ada Lovelace (born 10 Dec. 1815) was an English mathematician. She wrote notes."},
    {"name": "John F. Kennedy", "text": "John F. Kennedy was the 35th president of the U.S. from 1961. He was shot."},
    {"name": "Nobody", "text": "   "},  # no text: skipped, not a record with an empty target
]


# --- sentence splitter -------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, first", [
    ("Albert Einstein (14 March 1879 – 18 April 1955) was a German-born physicist. He developed relativity.",
     "Albert Einstein (14 March 1879 – 18 April 1955) was a German-born physicist."),
    ("J. R. R. Tolkien was an English writer. He wrote.", "J. R. R. Tolkien was an English writer."),
    ("Martin Luther King Jr. was a minister. He led.", "Martin Luther King Jr. was a minister."),
    ("Dr. Who is a show on St. Patrick's day. It airs.", "Dr. Who is a show on St. Patrick's day."),
    ("The film (released c. 1950 in St. Louis.) is about a dog. It ends.",
     "The film (released c. 1950 in St. Louis.) is about a dog."),
    ("It cost 3.5 million dollars in 1990. Then it fell.", "It cost 3.5 million dollars in 1990."),
    ("He wore No. 5 for the club. Later he left.", "He wore No. 5 for the club."),
    ("leonard randle -lrb- born 1949 -rrb- is a former player . he was born .",
     "leonard randle -lrb- born 1949 -rrb- is a former player ."),
    ('He said "Go home." Then he left.', 'He said "Go home."'),
    ("Is it real? Nobody knows.", "Is it real?"),
    ("A title line\n\nThe body starts here. More.", "A title line"),
    ("No final period", "No final period"),
])
def test_first_sentence(text, first):
    assert first_sentence(text) == first


def test_split_sentences_keeps_every_sentence_and_normalises_space():
    assert split_sentences("One  is\nhere. Two is there!  Three?") == ["One is here.", "Two is there!", "Three?"]
    assert split_sentences("") == [] and first_sentence("   ") == ""


# --- world ---------------------------------------------------------------------------------------------------

@pytest.fixture
def world_run(tmp_path, world):
    cfg = build_config({}, ["world.num_people=60", f"run.output_dir={tmp_path}", "run.name=r"])
    write_world(cfg, world, ["a sentence ."], cfg.run_dir / "world")
    return cfg


def test_world_loader_matches_the_world_records(world_run, world):
    ds = load_prompts("world", world_run.run_dir, "sft")
    assert isinstance(ds, datasets.Dataset)
    expected = [{"topic": r["name"], "prompt": r["prompt"], "target": r["target"], "frequency": r["frequency"]}
                for r in prompt_records(world, "sft")]
    assert len(expected) > 0 and ds.to_list() == expected
    # The config route reads the same thing (data.path defaults to the run directory for the world).
    assert prompts_for(world_run, "sft").to_list() == expected
    # The world dir itself, and all splits at once.
    assert load_prompts("world", world_run.run_dir / "world", "eval")["topic"] == [p.name for p in world.split("eval")]
    everything = load_prompts("world", world_run.run_dir)
    assert everything["topic"] == [p.name for s in SPLITS for p in world.split(s)]
    assert len(everything) == len(world.people)


def test_world_loader_errors(world_run, tmp_path):
    with pytest.raises(InputError, match="unknown world split 'test'"):
        load_prompts("world", world_run.run_dir, "test")
    with pytest.raises(InputError, match=r"prompts_sft\.jsonl: world prompts not found; run `halluray world`"):
        load_prompts("world", tmp_path / "elsewhere", "sft")


# --- WikiBios / WikiPlots --------------------------------------------------------------------------------------

def test_wikibios_jsonl(tmp_path):
    ds = load_prompts("wikibios", write_jsonl(tmp_path / "bios.jsonl", BIOS))
    assert ds.to_list() == [
        {"topic": "Ada Lovelace", "prompt": "Write a biography for Ada Lovelace.",
         "target": "Ada Lovelace (born 10 Dec. 1815) was an English mathematician."},
        {"topic": "John F. Kennedy", "prompt": "Write a biography for John F. Kennedy.",
         "target": "John F. Kennedy was the 35th president of the U.S. from 1961."},
    ]


def test_wikibios_hf_wiki_bio_layout_parquet(tmp_path):
    """HF `wiki_bio`: the name in the struct column input_text.context, the tokenized bio in target_text."""
    rows = [{"input_text": {"table": {"column_header": ["name"], "content": ["x"]}, "context": "leonard randle\n"},
             "target_text": "leonard randle -lrb- born 1949 -rrb- is a former baseball player . he played ."}]
    datasets.Dataset.from_list(rows).to_parquet(str(tmp_path / "wiki_bio.parquet"))
    [record] = load_prompts("wikibios", tmp_path / "wiki_bio.parquet").to_list()
    assert record == {"topic": "leonard randle", "prompt": "Write a biography for leonard randle.",
                      "target": "leonard randle -lrb- born 1949 -rrb- is a former baseball player ."}


def test_wikiplots_kaggle_csv_columns(tmp_path):
    path = tmp_path / "plots.csv"
    path.write_text('Release Year,Title,Plot\n1999,The Matrix,"A hacker learns the truth. He fights."\n'
                    '1977,Star Wars,"Luke joins the rebels. They win."\n')
    ds = load_prompts("wikiplots", path)
    assert ds["prompt"] == ["What is the premise of The Matrix?", "What is the premise of Star Wars?"]
    assert ds["target"] == ["A hacker learns the truth.", "Luke joins the rebels."]
    assert ds["topic"] == ["The Matrix", "Star Wars"]


def test_missing_field_names_field_columns_and_file(tmp_path):
    path = write_jsonl(tmp_path / "people.jsonl", [{"person": "Ada", "bio": "Ada was a mathematician. More."}])
    with pytest.raises(InputError) as e:
        load_prompts("wikibios", path)
    msg = str(e.value)
    assert "missing field 'name'" in msg and "available columns: person, bio" in msg and str(path) in msg
    assert "data.fields.name" in msg
    # The configured column names fix it.
    ds = load_prompts("wikibios", path, fields={"name": "person", "text": "bio"})
    assert ds[0] == {"topic": "Ada", "prompt": "Write a biography for Ada.", "target": "Ada was a mathematician."}
    # A configured column that does not exist is named too.
    with pytest.raises(InputError, match=r"missing field 'text' \(looked for column 'biography'\).*person, bio"):
        load_prompts("wikibios", path, fields={"name": "person", "text": "biography"})
    with pytest.raises(InputError, match="unknown field.*nmae.*known: name, text"):
        load_prompts("wikibios", path, fields={"nmae": "person"})


@pytest.mark.parametrize("dataset, row, field", [
    ("wikiplots", {"name": "x", "plot": "y."}, "title"),
    ("triviaqa", {"question": "Q?", "reply": "A"}, "answer"),
    ("mmlu", {"question": "Q?", "choices": ["a", "b"], "label": 1}, "answer"),
    ("mmlu", {"question": "Q?", "A": "a", "B": "b", "answer": 1}, "choices"),
    ("world", {"name": "Zapur", "prompt": "p"}, "target"),
])
def test_every_loader_reports_its_missing_field(tmp_path, dataset, row, field):
    path = write_jsonl(tmp_path / "data.jsonl", [row])
    with pytest.raises(InputError, match=rf"data\.jsonl: missing field '{field}'.*available columns: {', '.join(row)}"):
        load_prompts(dataset, path)


def test_empty_sources_are_input_errors(tmp_path):
    header_only = tmp_path / "empty.csv"
    header_only.write_text("name,text\n")
    with pytest.raises(InputError, match=r"empty\.csv: no records"):
        load_prompts("wikibios", header_only)
    blank = write_jsonl(tmp_path / "blank.jsonl", [{"name": "", "text": "x."}, {"name": "B", "text": ""}])
    with pytest.raises(InputError, match=r"blank\.jsonl: no usable records \(all 2 rows"):
        load_prompts("wikibios", blank)
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(InputError, match=r"empty\.jsonl: no records"):
        load_prompts("wikibios", tmp_path / "empty.jsonl")
    datasets.Dataset.from_dict({"name": [], "text": []}).save_to_disk(str(tmp_path / "empty_dir"))
    with pytest.raises(InputError, match="empty_dir: no records"):
        load_prompts("wikibios", tmp_path / "empty_dir")


def test_bad_paths_and_datasets(tmp_path):
    with pytest.raises(InputError, match="nope.jsonl: dataset file or directory not found"):
        load_prompts("wikibios", tmp_path / "nope.jsonl")
    (tmp_path / "bios.xlsx").write_text("x")
    with pytest.raises(InputError, match="unsupported data file type '.xlsx'"):
        load_prompts("wikibios", tmp_path / "bios.xlsx")
    (tmp_path / "broken.jsonl").write_text('{"name": "A", "text": \n')
    with pytest.raises(InputError, match="broken.jsonl: could not read it as a dataset"):
        load_prompts("wikibios", tmp_path / "broken.jsonl")
    with pytest.raises(InputError, match="unknown dataset 'wikibio'.*wikibios"):
        load_prompts("wikibio", tmp_path / "x.jsonl")
    assert set(LOADERS) == {"world", "world_qa", "wikibios", "wikiplots", "triviaqa", "mmlu", "fact_table",
                            "entity_table"}


# --- splits ------------------------------------------------------------------------------------------------------

def test_split_placeholder_and_single_file_splits(tmp_path):
    write_jsonl(tmp_path / "bios_train.jsonl", BIOS[:1])
    write_jsonl(tmp_path / "bios_validation.jsonl", BIOS[1:2])
    pattern = str(tmp_path / "bios_{split}.jsonl")
    assert load_prompts("wikibios", pattern, "validation")["topic"] == ["John F. Kennedy"]
    assert load_prompts("wikibios", pattern, "train")["topic"] == ["Ada Lovelace"]
    with pytest.raises(InputError, match="placeholder but no split"):
        load_prompts("wikibios", pattern)
    # A lone file is the split "train"; asking it for another split is refused, not silently the same data.
    single = tmp_path / "bios_train.jsonl"
    assert load_prompts("wikibios", single, "train")["topic"] == ["Ada Lovelace"]
    with pytest.raises(InputError, match="single split .*no split 'eval'.*data.split_map"):
        load_prompts("wikibios", single, "eval")


def test_directories_of_split_files_and_saved_single_datasets(tmp_path):
    (tmp_path / "plots").mkdir()
    write_jsonl(tmp_path / "plots" / "train.jsonl", [{"title": "Up", "plot": "An old man flies. A boy helps."}])
    write_jsonl(tmp_path / "plots" / "test.jsonl", [{"title": "Heat", "plot": "A thief plans. A cop hunts."}])
    assert load_prompts("wikiplots", tmp_path / "plots", "test")["target"] == ["A thief plans."]
    assert load_prompts("wikiplots", tmp_path / "plots", "train")["topic"] == ["Up"]
    datasets.Dataset.from_list([{"title": "Jaws", "plot": "A shark attacks. Police respond."}]).save_to_disk(
        str(tmp_path / "saved"))
    assert load_prompts("wikiplots", tmp_path / "saved").to_list() == [
        {"topic": "Jaws", "prompt": "What is the premise of Jaws?", "target": "A shark attacks."}]


def test_prompts_for_maps_pipeline_splits(tmp_path):
    path = write_jsonl(tmp_path / "bios.jsonl", BIOS)
    cfg = build_config({"data": {"dataset": "wikibios", "path": str(path), "split_map": {"sft": "train"}}})
    assert prompts_for(cfg, "sft")["topic"] == ["Ada Lovelace", "John F. Kennedy"]
    with pytest.raises(InputError, match="no split 'eval'"):
        prompts_for(cfg, "eval")
    with pytest.raises(InputError, match="data.path must be set for dataset 'mmlu'"):
        prompts_for(build_config({"data": {"dataset": "mmlu"}}), "sft")


def test_data_config_validation():
    with pytest.raises(ConfigError, match="data.split_map.test"):
        build_config({"data": {"split_map": {"test": "train"}}})
    cfg = build_config({}, ["data.fields={choices: [A, B, C, D], answer: target}"])
    assert cfg.data.fields == {"choices": ["A", "B", "C", "D"], "answer": "target"}


# --- TriviaQA ----------------------------------------------------------------------------------------------------

def test_triviaqa_save_to_disk_datasetdict_nested_answer(tmp_path):
    def rows(qids):
        return [{"question": f"Which star is nearest, {q}?", "question_id": q,
                 "answer": {"value": "The Sun", "aliases": ["Sun", "The Sun", "Sol"], "type": "WikipediaEntity"}}
                for q in qids]
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows(["tc_1", "tc_2"])),
                          "validation": datasets.Dataset.from_list(rows(["tc_9"]))}).save_to_disk(str(tmp_path / "tqa"))
    ds = load_prompts("triviaqa", tmp_path / "tqa", "validation")
    assert ds.to_list() == [{"topic": "tc_9", "prompt": "Which star is nearest, tc_9?", "target": "The Sun",
                             "answers": ["The Sun", "Sun", "Sol"]}]
    assert load_prompts("triviaqa", tmp_path / "tqa", "train")["topic"] == ["tc_1", "tc_2"]
    with pytest.raises(InputError, match="no split 'test' \\(available: train, validation\\)"):
        load_prompts("triviaqa", tmp_path / "tqa", "test")
    with pytest.raises(InputError, match="has splits train, validation; say which one"):
        load_prompts("triviaqa", tmp_path / "tqa")


def test_triviaqa_flat_csv_without_id_or_aliases(tmp_path):
    path = tmp_path / "qa.csv"
    path.write_text("question,answer\nWho wrote Hamlet?,Shakespeare\n,orphan answer\n")
    ds = load_prompts("triviaqa", path)  # the row without a question is skipped
    assert ds.to_list() == [{"topic": "triviaqa-0", "prompt": "Who wrote Hamlet?", "target": "Shakespeare",
                             "answers": ["Shakespeare"]}]


# --- MMLU --------------------------------------------------------------------------------------------------------

def test_mmlu_cais_layout_parquet(tmp_path):
    rows = [{"question": "2 + 2 = ?", "subject": "math", "choices": ["3", "4", "5", "22"], "answer": 1},
            {"question": "Capital of France?", "subject": "geo", "choices": ["Rome", "Oslo", "Paris", "Bern"],
             "answer": 2}]
    datasets.Dataset.from_list(rows).to_parquet(str(tmp_path / "mmlu.parquet"))
    ds = load_prompts("mmlu", tmp_path / "mmlu.parquet")
    assert ds[0] == {"topic": "math-0", "prompt": "2 + 2 = ?\nA. 3\nB. 4\nC. 5\nD. 22\nAnswer:", "target": "4",
                     "choices": ["3", "4", "5", "22"], "answer_index": 1}
    assert ds["target"] == ["4", "Paris"] and ds["answer_index"] == [1, 2] and ds["topic"] == ["math-0", "geo-1"]


def test_mmlu_letter_columns_csv_and_bad_answer(tmp_path):
    path = tmp_path / "mmlu.csv"
    path.write_text("id,question,A,B,C,D,answer\nq7,Largest planet?,Mars,Jupiter,Venus,Earth,b\n")
    [record] = load_prompts("mmlu", path).to_list()
    assert record["topic"] == "q7" and record["answer_index"] == 1 and record["target"] == "Jupiter"
    assert record["choices"] == ["Mars", "Jupiter", "Venus", "Earth"]
    bad = tmp_path / "bad.csv"
    bad.write_text("question,A,B,C,D,answer\nLargest planet?,Mars,Jupiter,Venus,Earth,F\n")
    with pytest.raises(InputError, match=r"bad\.csv: row 0: answer 'F' is neither an index nor a letter"):
        load_prompts("mmlu", bad)


def test_mmlu_answer_index_forms():
    choices = ["x", "y", "z"]
    assert [answer_index(a, choices) for a in (0, "2", "B", "c", "z")] == [0, 2, 1, 2, 2]
    assert [answer_index(a, choices) for a in (3, -1, "D", "w", True)] == [None] * 5
    assert mcq_prompt("Q?", ["a", "b"]) == "Q?\nA. a\nB. b\nAnswer:"
