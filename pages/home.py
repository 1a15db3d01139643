"""Home: what signlab is, where to start, the dataset at a glance, the device, the latest runs."""
import numpy as np
import pandas as pd
import streamlit as st

from signlab import figures, ui
from signlab.data import class_counts
from signlab.labels import LETTERS
from signlab.teach import HOME_INTRO

ui.ensure_router()
st.title("✋ signlab")
st.markdown("#### Learn how image classifiers work by teaching one to read sign language")
st.markdown(HOME_INTRO)

c1, c2, c3 = st.columns(3)
if c1.button("🧭 Start the guided tour", type="primary", width="stretch"):
    st.switch_page("pages/guide.py")
if c2.button("🏋️ Train a model now", width="stretch"):
    st.switch_page("pages/train.py")
if c3.button("✋ Classify a sign", width="stretch"):
    st.switch_page("pages/classify.py")

ds = ui.dataset()
st.subheader("The dataset at a glance")
m1, m2, m3, m4 = st.columns(4)
m1.metric("Training images", f"{len(ds.train):,}")
m2.metric("Test images", f"{len(ds.test):,}")
m3.metric("Letters", f"{len(LETTERS)}", help="A–Y without J (J and Z need motion)")
m4.metric("Image size", "28 × 28 px", help="grayscale, 784 pixels")
counts = class_counts(ds.train)
first = [int(np.flatnonzero(ds.train.targets == k)[0]) for k in range(len(LETTERS))]  # one image a letter
st.plotly_chart(figures.tile_grid(ds.train.images[first], list(LETTERS), cols=12, tile_px=64,
                                  title="One training image of each letter"), width="content")
st.caption(f"Between {counts.min():,} and {counts.max():,} training images a letter. J and Z are missing: "
           "they are signed with a movement, which a single photo cannot show.")

st.subheader("Latest runs")
runs = ui.runs()[:5]
if runs:
    rows = [r.summary() for r in runs]
    df = pd.DataFrame(rows)[["name", "model", "status", "epochs", "test_accuracy", "train_seconds"]]
    df["test_accuracy"] = df["test_accuracy"].map(lambda v: f"{100 * v:.2f}%" if isinstance(v, float) else "–")
    df["train_seconds"] = df["train_seconds"].map(lambda v: f"{v:.1f} s" if isinstance(v, float) else "–")
    st.dataframe(df.rename(columns={"test_accuracy": "test accuracy", "train_seconds": "training time"}),
                 hide_index=True, width="stretch")
else:
    st.info("No runs yet. Press **Train a model now**: with the default settings it takes seconds.")
