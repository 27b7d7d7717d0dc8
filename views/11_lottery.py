"""Lottery ticket lab: IMP with rewinding against random re-initialisation and a random mask."""

import streamlit as st

import app_state
from sparsity_viz import figures
from sparsity_viz.lottery import LotteryConfig, ticket_advantage
from sparsity_viz.recipes import lottery_recipe

app_state.sidebar()
st.title("Lottery ticket lab")
RATES = LotteryConfig()  # the pruning rates per round (the paper's)
st.markdown(
    f"Frankle & Carbin (2019): train a fresh network, prune the smallest {RATES.rate:.0%} of the surviving weights of "
    f"each hidden layer ({RATES.output_rate:.0%} of the output layer's), **rewind** the survivors to their initial "
    "values and train again; repeat. They found that the sparse *winning ticket* trains as well as the dense network: "
    "the curves below show whether it does here. Two controls show it is the mask *and* the initial values together: "
    "the same mask with new random weights, and the original weights under a random mask."
)

wb = app_state.bench()
recipe = lottery_recipe(wb.name)  # rounds, epochs per round and Adam lr that finish in seconds and still train
if wb.name == "lenet5":
    st.warning(f"LeNet-5 is a convolutional network, slow to train on a CPU: rounds are limited to {recipe.max_rounds} "
               f"and epochs to {recipe.max_epochs} here; the classic experiment is LeNet-300-100.")
elif wb.name != "lenet300":
    st.info(f"The classic experiment uses LeNet-300-100 on MNIST; {wb.name} works too (settings adapted to it).")

REWINDS, METRICS = [0, 10, 50, 100], ["best_accuracy", "test_accuracy"]
SETTINGS = {"rounds": None, "epochs": None, "rewind": 0, "seed": 0, "metric": "best_accuracy"}  # kept, in the URL
s = app_state.page_settings("lottery", SETTINGS, ranges={"rounds": (1, recipe.max_rounds),
                                                         "epochs": (1, recipe.max_epochs), "seed": (0, 9)},
                            choices={"rewind": REWINDS, "metric": METRICS})
c1, c2, c3, c4 = st.columns(4)
wanted_rounds, wanted_epochs = int(s["rounds"] or recipe.rounds), int(s["epochs"] or recipe.epochs)
shown_rounds, shown_epochs = min(wanted_rounds, recipe.max_rounds), min(wanted_epochs, recipe.max_epochs)
app_state.follow_model("lottery", {"lottery_rounds": shown_rounds, "lottery_epochs": shown_epochs})
rounds = c1.number_input("Rounds", 1, recipe.max_rounds, shown_rounds,
                         key="lottery_rounds",
                         help=f"After r rounds {1 - RATES.rate:g}^r of each hidden layer is left (8 rounds: "
                              f"{(1 - RATES.rate) ** 8:.0%}), {1 - RATES.output_rate:g}^r of the output layer.")
epochs = c2.number_input("Epochs per round", 1, recipe.max_epochs, shown_epochs, key="lottery_epochs")
rewind = c3.select_slider("Rewind to step", REWINDS, value=s["rewind"], key="lottery_rewind",
                          help="0 = the initialisation (Frankle & Carbin 2019); a few steps in helps bigger nets "
                               "(Frankle et al. 2020).")
seed = c4.number_input("Init seed", 0, 9, int(s["seed"]), key="lottery_seed")
metric = st.radio("Accuracy per round", METRICS, index=METRICS.index(s["metric"]), horizontal=True,
                  key="lottery_metric",
                  format_func=lambda m: {"best_accuracy": "best epoch (as the paper)", "test_accuracy": "last epoch"}[m])
rounds_kept = app_state.kept_value(wanted_rounds, int(rounds), recipe.max_rounds)
epochs_kept = app_state.kept_value(wanted_epochs, int(epochs), recipe.max_epochs)
app_state.keep_page_settings("lottery", SETTINGS, rounds=None if rounds_kept == recipe.rounds else rounds_kept,
                             epochs=None if epochs_kept == recipe.epochs else epochs_kept, rewind=rewind,
                             seed=int(seed), metric=metric)

config = LotteryConfig(rounds=int(rounds), epochs=int(epochs), lr=recipe.lr, rewind_step=int(rewind), seed=int(seed))
frame = app_state.lab_result(app_state.lottery_key(wb.name, int(seed), config))
problem = app_state.lottery_problem(config)
if problem is not None and (frame is None or frame.attrs.get("cancelled")):
    st.warning(problem)
elif frame is None or frame.attrs.get("cancelled"):
    st.caption(f"{int(rounds)} rounds × 3 trainings of {int(epochs)} epochs each, plus the dense run.")
    if st.button("Run the experiment" if frame is None else "Run again to finish", key="lottery_run",
                 type="primary", icon=":material/play_arrow:"):
        frame = app_state.lottery_run(wb.name, int(seed), config)

if frame is None:
    if problem is None:
        st.info("Press **Run the experiment**: a progress bar follows the rounds; **Stop** keeps the finished rounds.")
elif len(frame) == 0:
    st.warning("Stopped before the first round finished.")
else:
    if frame.attrs.get("cancelled"):
        st.warning(f"Stopped: showing the {int(frame['round'].max())} rounds finished so far.")
    fig = figures.lottery_curves(frame, metric=metric,
                                 title=f"{wb.name} on {wb.dataset}: ticket vs controls (init seed {seed})")
    fig.update_layout(height=560)
    app_state.show_figure(fig, "lottery_curves")
    adv = ticket_advantage(frame, low=0.5, high=1.0, metric=metric)
    if len(adv):
        cols = [c for c in adv.columns if c.startswith("ticket_minus_")]
        best = adv.iloc[-1]
        st.markdown(f"At **{100 * best['sparsity']:.0f} %** sparsity the ticket is "
                    + ", ".join(f"**{100 * best[c]:+.1f} points** vs *{c.removeprefix('ticket_minus_').replace('_', ' ')}*"
                                for c in cols) + ".")
    with st.expander("Every round"):
        app_state.show_table(frame, f"lottery_{wb.name}")
