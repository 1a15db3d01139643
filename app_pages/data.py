"""Data: sample images by letter, the class balance of both splits, and the mean image of each letter."""
import streamlit as st

from signlab import figures, ui, views
from signlab.labels import LETTERS, unit_pixels
from signlab.teach import DATA_DETAILS, DATA_INTRO

COUNTS_PX, MEANS_PX = 390, 400  # the means: 8 tiles of 48 px a row (figures.tile_grid); with the 16-px gap,
# 806 px: side by side in the main area of a 1,280-px window (about 820 px)

st.title("🖼️ The data")
ui.explain(DATA_INTRO, DATA_DETAILS)

ds = ui.dataset()
seed = ui.state(ui.Keys.DATA_SEED, 0)

# ----------------------------------------------------------------------------- samples
st.subheader("Sample images")
# the link's split, letters and count (a refresh put them back to the defaults): read when the
# widgets have no value yet (a new session, or back from another page)
if "data_split" not in st.session_state:
    linked, problems = views.data_link(st.query_params.to_dict())
    for problem in problems:
        st.warning(problem.message(ui.md), icon="⚠️")
    for name, value in {"count": views.DATA_COUNT, **linked}.items():  # the count's default here: a widget given a value
        st.session_state[f"data_{name}"] = value        # and a session value would warn on the page
# a row that wraps (not columns): in an 820-px window columns cut the button to "R…"
row = st.container(horizontal=True, vertical_alignment="bottom", gap="small")
split_name = row.radio("Split", list(views.DATA_SPLITS), horizontal=True, key="data_split", width="content",
                       format_func=lambda s: {"train": "Training", "test": "Test"}[s])
letters = row.multiselect("Letters", list(range(len(LETTERS))), format_func=lambda i: LETTERS[i],
                          key="data_letters", placeholder=f"All {len(LETTERS)} letters", width=280,
                          help="Leave empty to sample from every letter.")
count = row.select_slider("Images", list(views.DATA_COUNTS), key="data_count", width=160)
st.query_params.pop("letters", None)  # written again below when letters are picked
st.query_params.update(views.data_query(split_name, letters, count))
if row.button("🔀 Reshuffle", width="content", help="Draw a new random sample"):
    st.session_state[ui.Keys.DATA_SEED] = seed + 1
    st.rerun()

split = ds.train if split_name == "train" else ds.test
idx = views.sample_indices(split.targets, letters, count, seed)
if len(idx) == 0:
    st.info("No image matches this filter.")
else:
    chosen = "all letters" if not letters else ", ".join(LETTERS[i] for i in letters)
    st.caption(f"{len(idx)} random {'training' if split_name == 'train' else 'test'} images of {chosen}, "
               f"each titled with its letter. Hover a pixel to read its grey level (0 black, 1 white).")
    # 8 tiles of 56 px a row (about 490 px) keep their size in an 820-px window; 16 of 48 px were
    # shrunk there to 26-px hands
    st.plotly_chart(figures.tile_grid(unit_pixels(split.images[idx]), views.letter_titles(split.targets[idx]), cols=8,
                                      tile_px=56, zmin=0, zmax=1),
                    width="content", key="data_samples")

# ----------------------------------------------------------------------------- counts and means
# two fixed-width boxes in a row that wraps: side by side from a window of about 1,280 px (sidebar
# open), the means under the counts in a narrower one (as halves of an 820-px window the bar chart
# was 220 px wide, its 24 letters piled into one smudge and the legend on the bars)
row = st.container(horizontal=True, gap="small")
left = row.container(width=COUNTS_PX, key="data_counts_box")
right = row.container(width=MEANS_PX, key="data_means_box")
with left:
    st.subheader("Images per letter")
    train_counts, test_counts = views.class_counts(ds.train), views.class_counts(ds.test)
    st.plotly_chart(figures.class_counts(train_counts, test_counts), width="stretch", key="data_counts")
    lo, hi = int(train_counts.argmin()), int(train_counts.argmax())
    st.caption(f"The classes are roughly balanced: from {train_counts[lo]:,} training images ({LETTERS[lo]}) "
               f"to {train_counts[hi]:,} ({LETTERS[hi]}). With {len(LETTERS)} letters, guessing at random "
               f"scores about {100 / len(LETTERS):.0f}%.")
with right:
    st.subheader("The mean image of each letter")
    means = ui.mean_images(split_name)
    st.plotly_chart(figures.tile_grid(means, list(LETTERS), cols=8, tile_px=48, per_tile_scale=True),
                    width="content", key="data_means")
    st.caption(f"The pixel-by-pixel average of all {'training' if split_name == 'train' else 'test'} images of "
               "each letter, stretched to full contrast. Blurry means the hands vary; sharp edges mean the letter "
               "looks alike every time. Letters whose means look alike (M and N, for example) are the ones models "
               "confuse.")
