"""The small vocabulary of the built-in opinion survey (see :mod:`grpo_core.data.opinions`).

Kept apart from the generator so that the config can state its limits without importing numpy.
Questions have 5-14 words, options 1-3 words; every template lists four options, of which a
question shows the first two to four. Group names are fictional on purpose.
"""

from __future__ import annotations

GROUP_NAMES = (
    "Northland",
    "Southland",
    "Eastland",
    "Westland",
    "Highland",
    "Lowland",
    "Islandia",
    "Riverland",
)

TOPICS = (
    "education",
    "transport",
    "farming",
    "clean water",
    "health care",
    "policing",
    "housing",
    "sport",
    "the internet",
    "science",
    "small business",
    "defence",
    "elder care",
    "music",
    "tourism",
    "recycling",
)

QUESTION_TEMPLATES: tuple[tuple[str, tuple[str, str, str, str]], ...] = (
    ("Should the country spend more money on {topic}?", ("Yes", "No", "Not sure", "It depends")),
    (
        "How important is {topic} for the future?",
        ("Very important", "Not important", "Somewhat important", "Do not know"),
    ),
    (
        "Do you trust the people who run {topic}?",
        ("A lot", "Not at all", "A little", "Do not know"),
    ),
    ("Is {topic} getting better or worse?", ("Better", "Worse", "The same", "Do not know")),
    ("Should young people care about {topic}?", ("Yes", "No", "Not sure", "It depends")),
    (
        "How often do you talk about {topic} with friends?",
        ("Often", "Never", "Sometimes", "Rarely"),
    ),
    ("Would you pay more tax for better {topic}?", ("Yes", "No", "Not sure", "It depends")),
    ("Who should decide about {topic}?", ("Experts", "The government", "Local people", "Nobody")),
    (
        "Is {topic} a big problem today?",
        ("Big problem", "No problem", "Small problem", "Do not know"),
    ),
    (
        "Should {topic} get more help from the state?",
        ("Agree", "Disagree", "Not sure", "It depends"),
    ),
)

FRAMINGS = ("", "In your town, ", "Over the next ten years, ")

MAX_QUESTIONS = len(QUESTION_TEMPLATES) * len(TOPICS) * len(FRAMINGS)
"""Distinct questions the vocabulary can form (480)."""
