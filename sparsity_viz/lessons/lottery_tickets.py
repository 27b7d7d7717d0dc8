"""Lesson: lottery tickets. IMP with rewinding against the same mask re-initialised and a random mask."""

from __future__ import annotations

from ..lottery import LotteryConfig, lottery_experiment, ticket_advantage
from ..models import build_model
from ..recipes import lottery_recipe
from .base import AppState, Lesson, LessonContext, Reveal, Step, pct, points

MODEL = "digits_mlp"  # trains a round in a fraction of a second; the Lottery page says LeNet-300-100 is the classic
RECIPE = lottery_recipe(MODEL)
INIT_SEED = 0
METRIC = "best_accuracy"  # the page's default "best epoch (as the paper)"
PAGE_SETTINGS = {"rounds": RECIPE.rounds, "epochs": RECIPE.epochs, "rewind": 0, "seed": INIT_SEED, "metric": METRIC}


def config() -> LotteryConfig:
    """What the Lottery page runs with ``PAGE_SETTINGS`` (the model's recipe, rewind to step 0, init seed 0)."""
    return LotteryConfig(rounds=RECIPE.rounds, epochs=RECIPE.epochs, lr=RECIPE.lr, rewind_step=0, seed=INIT_SEED)


def experiment(ctx: LessonContext):
    """The page's experiment: from a fresh seeded initialisation of the lesson's model."""
    return lottery_experiment(build_model(ctx.name, INIT_SEED), ctx.dataset, config())


def _ticket(ctx: LessonContext) -> Reveal:
    frame = experiment(ctx)
    last = ticket_advantage(frame, low=0.5, high=1.0, metric=METRIC).iloc[-1]
    dense = float(frame[(frame["method"] == "imp_rewind") & (frame["round"] == 0)][METRIC].iloc[0])
    ticket, reinit, rmask = (float(last[m]) for m in ("imp_rewind", "reinit", "random_mask"))

    def versus(gap: float, what: str) -> str:
        return f"{points(gap)} vs {what}"

    text = (f"After {int(last['round'])} rounds (**{pct(last['sparsity'])}** of the weights pruned): the ticket "
            f"scores **{pct(ticket)}** (dense, round 0: {pct(dense)}); the same mask with new random weights "
            f"{pct(reinit)}; the original weights under a random mask {pct(rmask)}. The ticket is "
            f"{versus(ticket - reinit, 're-initialised')} and {versus(ticket - rmask, 'random mask')}.")
    table = frame[["method", "round", "sparsity", METRIC]].copy()
    return Reveal(text, {"sparsity": float(last["sparsity"]), "ticket": ticket, "reinit": reinit,
                         "random_mask": rmask, "dense": dense}, table)


LESSON = Lesson(
    name="lottery_tickets",
    title="Lottery tickets",
    summary="Is a sparse network that trains well hidden in the dense one at initialisation?",
    steps=(
        Step("Ticket vs controls", AppState("11_lottery", MODEL, None, {"lottery": PAGE_SETTINGS}),
             "Press **Run the experiment**. After the last round, will the rewound ticket beat the same mask with new "
             "random weights? And the original weights under a random mask? Guess both gaps.", _ticket,
             look="read the three curves and the sentence under them"),
    ),
)
