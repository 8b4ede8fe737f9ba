"""The built-in opinion survey: the default data of demos and tests.

Multiple-choice questions (10 templates x 16 topics x 3 framings, 2-4 short options) answered by
fictional groups ("Northland", ...). The first group's ranking of a question's options follows a
per-template order, reversed for topics of negative valence, so it can be learned and carries
over to unseen questions. Every other group reverses that ranking on a ``disagreement`` fraction
of the topics, taken in turn from one shuffled topic list, so that different groups disagree on
different topics where possible. Group ``g`` answers the first ``group_sizes[g]`` fraction of one
shared random order of the questions, so a smaller group's questions are also answered by the
larger groups (as when a survey reaches some countries with fewer questions).

The defaults (1.0 / 0.5 / 0.15 of 300 questions) give 300 / 150 / 45 rows. On about half of its
rows the minority prefers another answer than both larger groups do for the very same question,
which only the group name in the prompt tells apart. Plain DPO/IPO, averaging over pairs, fits
the larger groups there and underserves the minority; the group-robust methods up-weight it.

Answer shares are Dirichlet(1) draws sorted along the group's ranking (the preferred option is
strictly the most probable). Everything is drawn from ``stable_rng(seed, "opinions")``: the same
seed and config give the same survey, with no data file.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from grpo_core.data.config import OpinionGeneratorConfig
from grpo_core.data.ids import make_question_id, stable_rng
from grpo_core.data.opinion_texts import FRAMINGS, GROUP_NAMES, QUESTION_TEMPLATES, TOPICS
from grpo_core.data.survey import SurveyRow
from grpo_core.data.validation import Location

SOURCE_LABEL = "<built-in opinion survey>"


@dataclass(frozen=True)
class OpinionQuestion:
    """A generated question and the first group's ranking of its options (best first)."""

    question_id: str
    text: str
    topic: str
    options: tuple[str, ...]
    majority_ranking: tuple[int, ...]


@dataclass(frozen=True)
class OpinionSurvey:
    """The generated survey: rows for the survey adapter, plus the ground truth behind them."""

    rows: tuple[SurveyRow, ...]
    groups: tuple[str, ...]
    questions: dict[str, OpinionQuestion]
    reversed_topics: dict[str, tuple[str, ...]]
    """Per group, the topics on which it reverses the first group's ranking."""


def generate_opinion_survey(config: OpinionGeneratorConfig, *, seed: int) -> OpinionSurvey:
    """Generate the survey (deterministic for ``seed`` and ``config``; see the module docstring)."""
    rng = stable_rng(seed, "opinions")
    names = config.group_names or GROUP_NAMES[: config.num_groups]
    questions = _questions(config, rng)
    flips = round(config.disagreement * len(TOPICS))
    topic_order = [int(i) for i in rng.permutation(len(TOPICS))]
    reversed_topics = {names[0]: ()}
    for g, name in enumerate(names[1:]):
        picked = {topic_order[(g * flips + j) % len(TOPICS)] for j in range(flips)}
        reversed_topics[name] = tuple(TOPICS[i] for i in sorted(picked))
    shared_order = [int(i) for i in rng.permutation(len(questions))]
    rows: list[SurveyRow] = []
    for name, size in zip(names, config.group_sizes, strict=True):
        count = max(1, round(size * len(questions)))
        members = sorted(shared_order[:count])
        for index in members:
            question = questions[index]
            ranking = question.majority_ranking
            if question.topic in reversed_topics[name]:
                ranking = ranking[::-1]
            shares = np.sort(rng.dirichlet(np.ones(len(ranking))))[::-1]
            distribution = np.empty(len(ranking))
            distribution[list(ranking)] = shares
            rows.append(
                SurveyRow(
                    question_id=question.question_id,
                    question=question.text,
                    options=question.options,
                    group=name,
                    distribution=tuple(float(p) for p in distribution),
                    location=Location(SOURCE_LABEL, "generated", len(rows)),
                )
            )
    return OpinionSurvey(
        rows=tuple(rows),
        groups=tuple(names),
        questions={q.question_id: q for q in questions},
        reversed_topics=reversed_topics,
    )


def _questions(config: OpinionGeneratorConfig, rng: np.random.Generator) -> list[OpinionQuestion]:
    combos = [
        (t, topic, framing)
        for t in range(len(QUESTION_TEMPLATES))
        for topic in range(len(TOPICS))
        for framing in range(len(FRAMINGS))
    ]
    picked = sorted(
        int(i) for i in rng.choice(len(combos), size=config.num_questions, replace=False)
    )
    template_orders = [[int(i) for i in rng.permutation(4)] for _ in QUESTION_TEMPLATES]
    half = len(TOPICS) // 2
    valence = rng.permutation([1] * half + [-1] * (len(TOPICS) - half))
    questions = []
    for index in picked:
        t, topic, framing = combos[index]
        template, all_options = QUESTION_TEMPLATES[t]
        num_options = int(rng.integers(config.min_options, config.max_options + 1))
        text = template.format(topic=TOPICS[topic])
        if FRAMINGS[framing]:
            text = FRAMINGS[framing] + text[0].lower() + text[1:]
        ranking = [i for i in template_orders[t] if i < num_options]
        if valence[topic] < 0:
            ranking.reverse()
        questions.append(
            OpinionQuestion(
                question_id=make_question_id(text, prefix="syn_"),
                text=text,
                topic=TOPICS[topic],
                options=all_options[:num_options],
                majority_ranking=tuple(ranking),
            )
        )
    return questions
