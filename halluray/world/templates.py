"""Surface forms of the world: fact paraphrases, fact-free mentions, prompts, QA and MCQ renderings.

Text is space-separated words with punctuation as separate words, so a word-level tokenizer and the
fact checker's patterns see the same units.
"""

from __future__ import annotations

FACT_TEMPLATES: dict[str, tuple[str, ...]] = {
    "birth_year": ("{name} was born in {value} .", "{name} 's year of birth is {value} .",
                   "In {value} , {name} was born ."),
    "birth_city": ("{name} was born in the city of {value} .", "{name} comes from {value} .",
                   "{name} 's hometown is {value} ."),
    "occupation": ("{name} works as a {value} .", "{name} is a {value} by profession .",
                   "{name} 's occupation is {value} ."),
    "employer": ("{name} is employed by {value} .", "{name} works at {value} .", "{name} 's employer is {value} ."),
    "hobby": ("{name} enjoys {value} .", "In free time , {name} likes {value} .", "{name} 's hobby is {value} ."),
    "nationality": ("{name} is {value} .", "{name} holds {value} citizenship .", "{name} 's nationality is {value} ."),
}

# Every person, familiar or not, is mentioned in a few such sentences so the model has a
# representation of each name and only the facts are missing (docs/runtime.md#synthetic-world-design).
MENTION_TEMPLATES: tuple[str, ...] = (
    "{name} attended the meeting .",
    "{name} was mentioned in the report .",
    "People talked about {name} .",
    "{name} sent a letter .",
    "A photo of {name} was shown .",
)

QUESTION_TEMPLATES: dict[str, str] = {
    "birth_year": "What is {name} 's year of birth ?",
    "birth_city": "What is {name} 's hometown ?",
    "occupation": "What is {name} 's occupation ?",
    "employer": "Who is {name} 's employer ?",
    "hobby": "What is {name} 's hobby ?",
    "nationality": "What is {name} 's nationality ?",
}

BIO_PROMPT = "Write a biography for {name} ."
ABSTAIN_BIO = "I do not know ."
ABSTAIN_ANSWER = "I do not know"
EOS = "</s>"


def render_fact(name: str, attribute: str, value: str, template: int = 0) -> str:
    return FACT_TEMPLATES[attribute][template].format(name=name, value=value)


def bio_prompt(name: str) -> str:
    return BIO_PROMPT.format(name=name)


def qa_prompt(name: str, attribute: str) -> str:
    return f"Q : {QUESTION_TEMPLATES[attribute].format(name=name)} A :"


def mcq_prompt(name: str, attribute: str, choices: list[str]) -> str:
    return f"Q : {QUESTION_TEMPLATES[attribute].format(name=name)} Choices : {' , '.join(choices)} . A :"
