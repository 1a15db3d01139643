"""Evaluate: a run's test accuracy, its confusion matrix (click a cell to see its images), per-letter
precision/recall/F1 and its most confident mistakes."""
import pandas as pd
import streamlit as st

from signlab import figures, ui, views
from signlab.labels import LETTERS, unit_pixels
from signlab.teach import EVALUATE_DETAILS, EVALUATE_INTRO

st.title("🎯 Evaluate a model")
ui.explain(EVALUATE_INTRO, EVALUATE_DETAILS)

TRUE_KEY, PRED_KEY, CM_KEY = "eval_true", "eval_pred", "eval_cm"  # widget keys
MAX_PAIR_IMAGES = 30
# box widths in pixels: the page's content is 820 px wide in a 1,280-px window with the sidebar open,
# and the picker's image grid (6 tiles of 58 px) needs about 350
MATRIX_PX, PICKER_PX, METRIC_PX = 440, 350, 170  # four metrics: 776 px with the gaps, under 820
# the per-letter table (letter 60 + three bars of 100 + images 60 px) and its legend beside it: together
# 800 px, so side by side in a 1,280-px window and the legend under the table in an 820-px one, whose
# content is 488 px wide (as columns of 2:1 the table there was 290 px and hid F1 and the image count)
TABLE_PX, LEGEND_PX, BAR_PX = 440, 300, 100
# the mistakes' grid: 8 tiles of 58 px (496 px) keeps its size in an 820-px window; as 12 tiles of 84 px
# it was shrunk to 45% there and its titles ran into each other ("T→X 32%T→X 32%")
MISTAKE_COLS, MISTAKE_TILE_PX = 8, 58

run = ui.run_picker(help="Only runs with at least one finished epoch can be evaluated. By default the run you "
                    "trained last, else your best run by test accuracy.")
if run is None:
    st.stop()

ev = ui.or_stop(f"Could not evaluate run {run.id}", ui.evaluation, run)
ds = ui.dataset()
if other := views.other_data_text(run.config.data, ui.data_source()):
    st.info(other, icon="ℹ️")
model_name = run.config.model

# ----------------------------------------------------------------------------- headline numbers
n_wrong = ev.errors
rows = views.per_class_rows(ev)
# a row that wraps: in four columns of an 820-px window the numbers were cut to "99.7…"
with st.container(horizontal=True, gap="medium"):
    st.metric("Test accuracy", views.percent(ev.accuracy), help=f"Share of the {len(ev.y_true):,} test images predicted right",
              width=METRIC_PX)
    st.metric("Mistakes", f"{n_wrong:,}", help=f"out of {len(ev.y_true):,} test images", width=METRIC_PX)
    st.metric("Weakest letter (recall)", views.weakest_letter_text(rows),
              help="The letter the model finds least often", width=METRIC_PX)
    # as wide as its name: at the others' width "seed_convnet" read "seed_co…" in a 1280-px window
    st.metric("Model", model_name, help=f"{views.count_text(run.epochs_completed(), 'epoch')} trained",
              width="content")

if crowded := views.crowded_column_text(ev, model_name):
    st.warning(crowded[0], icon=crowded[1])


# ----------------------------------------------------------------------------- confusion matrix
def _on_click() -> None:
    """A click on a square: put its (true, predicted) pair into the two selectboxes."""
    event = st.session_state.get(CM_KEY)
    points = event.get("selection", {}).get("points") if event else None
    pair = views.click_to_pair(points)
    if pair is not None:
        st.session_state[TRUE_KEY], st.session_state[PRED_KEY] = pair


# the link's cell and matrix (a refresh kept only the run): read when the session opens the page first
link_pair = None
if ui.Keys.EVAL_PAIR_RUN not in st.session_state:
    link_pair, link_show, link_problems = views.eval_link(st.query_params.to_dict(), views.worst_pair(ev))
    for problem in link_problems:
        st.warning(problem.message(ui.md), icon="⚠️")
    if link_show is not None:
        st.session_state["eval_norm"] = link_show
if st.session_state.get(ui.Keys.EVAL_PAIR_RUN) != run.id:  # a new run: start at its most frequent mistake
    st.session_state[ui.Keys.EVAL_PAIR_RUN] = run.id
    st.session_state[ui.Keys.EVAL_PAIR] = link_pair or views.worst_pair(ev)
    st.session_state[TRUE_KEY], st.session_state[PRED_KEY] = st.session_state[ui.Keys.EVAL_PAIR]
elif TRUE_KEY not in st.session_state or PRED_KEY not in st.session_state:
    # back from another page: Streamlit dropped the widgets' values, the pair is kept under ui.Keys.EVAL_PAIR
    st.session_state[TRUE_KEY], st.session_state[PRED_KEY] = st.session_state[ui.Keys.EVAL_PAIR]

st.subheader("Confusion matrix")
# above the matrix it sets: in the picker's box it fell under the matrix in an 820-px window
norm = st.radio("Show", list(views.EVAL_SHOWS), horizontal=True, key="eval_norm",
                format_func=lambda v: {"counts": "Raw counts", "normalised": "Share of each true letter"}[v],
                help="Share: each row divided by its number of test images, in percent (the row sums to 100%).")
# two fixed-width boxes in a row that wraps: side by side from a window of about 1,270 px (sidebar open), and in a
# narrower one the picker moves under the matrix (as columns, the matrix was squeezed to 250 px)
row = st.container(horizontal=True, gap="small")
left = row.container(width=MATRIX_PX, key="eval_matrix_box")
# On a phone the box is narrower than MATRIX_PX and plotly shrinks the figure to it, with the fonts its
# cells were sized for: at 390 px the cells are 12 px and neighbouring counts read together ("21 21"
# as "2121"). There, every number takes 7 px, which two digits fit with room between them.
ui.phone_font("eval_matrix_box", ".textpoint text", 7)
right = row.container(width=PICKER_PX, key="eval_picker_box")
with right:
    st.markdown('<div id="cell"></div>\n\n**Pick a cell** by clicking it in the matrix, or here:', unsafe_allow_html=True)
    s1, s2 = st.columns(2)
    t = s1.selectbox("True letter", list(range(len(LETTERS))), format_func=lambda i: LETTERS[i], key=TRUE_KEY)
    p = s2.selectbox("Predicted letter", list(range(len(LETTERS))), format_func=lambda i: LETTERS[i], key=PRED_KEY)
    st.session_state[ui.Keys.EVAL_PAIR] = (t, p)
    st.query_params.update(cell=views.cell_text((t, p)), show=norm)  # a refresh or a shared link keeps them
    idx = ev.pair(t, p)
    shown = idx[:MAX_PAIR_IMAGES]
    said = views.pair_text(t, p, len(idx), int((ev.y_true == t).sum()), len(shown), views.label_smoothing(run))
    if len(idx) == 0:
        st.info(said)
    else:
        st.markdown(said)
        st.plotly_chart(figures.tile_grid(unit_pixels(ds.test.images[shown]), views.confidence_titles(ev.confidence[shown]),
                                          cols=6, tile_px=58, zmin=0, zmax=1),
                        width="content", key="eval_pair_images")
with left:
    # the figure is as wide as its box: when Streamlit narrowed a wider figure to its column it kept the
    # height, so the cells came out narrower than their numbers and the letters sat far above the grid
    fig = figures.confusion_matrix_clickable(ev.confusion, normalize=norm == "normalised", selected=(t, p),
                                             size=MATRIX_PX)
    st.plotly_chart(fig, width="content", key=CM_KEY, on_select=_on_click, selection_mode="points",
                    config={"displayModeBar": False})
    st.caption("Rows: the true letter. Columns: what the model said. Green: right; red: mistakes, darker = more. "
               + ("Each number is a percent of its row (✓: all of it). " if norm == "normalised" else "")
               + ("The green squares' numbers, too long for them, show when you point at one. "
                  if fig.layout.meta["diagonal_hidden"] else "")
               + "Point at a cell for its count, click it for its images.")
    # the picked cell said under the matrix too: in an 820-px window its images are 600 px further down,
    # and a click seemed only to draw a black outline
    st.markdown(f"Picked: **{LETTERS[t]} → {LETTERS[p]}**, {views.count_text(len(idx), 'image')}"
                + (" ([see them](#cell))" if len(idx) else "") + ".")  # beside the matrix when wide, below it when narrow

# ----------------------------------------------------------------------------- per class and mistakes
st.subheader("Per letter")
df = pd.DataFrame(rows)
# fixed widths: left to the grid, the bars took 150 px each and cut F1 and the image count at 1280 px
pct = {c: st.column_config.ProgressColumn(c, format="%.1f%%", min_value=0, max_value=100, width=BAR_PX)
       for c in ("precision", "recall", "F1")}
row = st.container(horizontal=True, gap="large")
with row.container(width=TABLE_PX, key="eval_table_box"):
    # every letter at once (at twelve rows' height it stopped at L, and the weak letters hid below)
    st.dataframe(df, hide_index=True, width="stretch", height="content",
                 column_config={**pct, "letter": st.column_config.TextColumn("letter", width=60),
                                "images": st.column_config.NumberColumn("images", format="%d", width=60,
                                                                        help="Test images of this letter")})
with row.container(width=LEGEND_PX):
    st.markdown("**Precision**: when the model says this letter, how often is it right? (0% where it never "
                "says it.)  \n"
                "**Recall**: of the real images of this letter, how many did it find?  \n"
                "**F1**: one number that is high only when both are.")
    worst = views.hardest_letters(rows)  # a letter at 100% F1 is not hard
    # one decimal, as the table beside it (T "96%" beside its 95.6%)
    hard = ", ".join(f"**{r['letter']}** ({views.percent(r['F1'] / 100, 1)})" for r in worst)
    if tied := views.tied_with_last(rows, worst):
        hard += f", and {views.count_text(tied, 'more letter')} at {views.percent(worst[-1]['F1'] / 100, 1)}"
    # said by which measure: beside "Weakest letter (recall) S: 40%" at the top, "Hardest letters
    # here: R (25% F1)" read as the page contradicting itself
    st.markdown(f"Hardest letters by F1, which also counts the images wrongly given the letter (the "
                f"**Weakest letter** box above ranks by recall alone): {hard}." if worst else
                "Every letter is recognised perfectly here.")

st.subheader("Mistakes, the most confident first")
mistakes = ev.mistakes(limit=24)
if not mistakes:
    st.success("No mistakes at all on the test set.")
else:
    st.caption(views.mistakes_caption(mistakes, ev.errors))
    st.plotly_chart(figures.tile_grid(unit_pixels(ds.test.images[[m["index"] for m in mistakes]]),
                                      views.mistake_titles(mistakes), cols=MISTAKE_COLS,
                                      tile_px=MISTAKE_TILE_PX, zmin=0, zmax=1),
                    width="content", key="eval_mistakes")
