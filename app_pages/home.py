"""Home: what signlab is, where to start, the dataset at a glance, the device, the latest runs."""
import streamlit as st

from signlab import figures, ui, views
from signlab.labels import LETTERS
from signlab.teach import HOME_INTRO

st.title("✋ signlab")
st.markdown("#### Learn how image classifiers work by teaching one to read sign language")
st.markdown(HOME_INTRO)

# a row that wraps: as three columns of an 820-px window the first read "Start the guided …"
starts = st.container(horizontal=True, gap="small")
if starts.button("🧭 Start the guided tour", type="primary"):
    st.session_state[ui.Keys.GUIDE_STEP] = 0  # from step 1, as it says; the sidebar's entry resumes
    st.switch_page("app_pages/guide.py")
if starts.button("🏋️ Train a model now"):
    st.switch_page("app_pages/train.py")
if starts.button("✋ Classify a sign"):
    st.switch_page("app_pages/classify.py")

ds = ui.dataset()
st.subheader("The dataset at a glance")
m1, m2, m3, m4 = st.columns(4)
m1.metric("Training images", f"{len(ds.train):,}")
m2.metric("Test images", f"{len(ds.test):,}")
m3.metric("Letters", f"{len(LETTERS)}", help="A–Y without J (J and Z need motion)")
# short: "28 × 28 px" was cut in a narrow window
m4.metric("Image size", "28×28", help="28 × 28 grayscale pixels, 784 in all")
counts = views.class_counts(ds.train)
# three rows of eight of 60 px (480 px: an 820-px window gives 488): in two rows of twelve it shrank each hand to
# about 40 px and left the figure's fixed height empty above and below them
st.plotly_chart(figures.tile_grid(ds.train.images[views.first_of_each(ds.train.targets, len(LETTERS))],
                                  list(LETTERS), cols=8, tile_px=60,
                                  title="One training image of each letter"), width="content",
                key="home_letters")
st.caption(f"Between {counts.min():,} and {counts.max():,} training images a letter. J and Z are missing: "
           "they are signed with a movement, which a single photo cannot show.")

st.subheader("Latest runs")
runs = ui.runs()[:5]
if runs:
    # a static table wraps its cells: on a phone it fits the screen instead of cutting off its right side
    st.table(views.latest_runs_rows(r.summary() for r in runs), hide_index=True)
else:
    st.info("No runs yet. Press **Train a model now**: the Train page says how long it takes on this server.")
