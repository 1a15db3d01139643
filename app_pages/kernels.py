"""Kernels: what a model learned. First-layer kernels (or logreg templates, or MLP units) epoch by
epoch, the kernels of deeper layers by input channel, and the feature maps of one test image."""
import streamlit as st

from signlab import figures, ui, views
from signlab.labels import LETTERS, unit_pixels
from signlab.teach import KERNELS_DETAILS, KERNELS_INTRO

st.title("🔬 Kernels and feature maps")
ui.explain(KERNELS_INTRO, KERNELS_DETAILS)

IMAGE_KEY = "kernels_image"
MAX_MAPS = 32
IMAGE_PX, MAPS_PX = 240, 480  # the maps: 8 tiles of 60 px a row (figures.tile_grid)
# Every grid at most 480 px wide: the page's content is 488 px in an 820-px window, and a wider grid
# was shrunk there with its height kept (20 kernels a row of 12 px each, in a band of empty space)
GRID_COLS = 12  # kernels of 40 px (first layer) or 36 px (deeper) a row
TEMPLATE_COLS = 6  # 72-px templates or hidden units a row

run = ui.run_picker(help="Only runs with at least one finished epoch have weights to look at.")
if run is None:
    st.stop()

model = views.first_network(ui.or_stop(f"Could not load run {run.id}", ui.load_model, run))  # an ensemble: its first
kind = views.model_kind(model)
history = run.kernel_history()
ds = ui.dataset()
if run.config.ensemble > 1:
    st.info(f"This run is an ensemble of {run.config.ensemble} networks with the same layers, trained side by side; "
            "its predictions average theirs. This page shows the first network.", icon="👥")


def _epoch_slider(label: str):
    """A slider over the saved epochs: (epoch, its first-layer weights); (None, the model's own) without history."""
    if len(history) < 2:
        if len(history) == 1:
            st.caption("Only one snapshot was saved for this run, so there is nothing to step through.")
        return None, views.first_layer_weight(model)
    epochs = sorted(history)
    epoch = st.select_slider(label, epochs, value=epochs[-1], key=f"kernels_epoch_{run.id}",
                             format_func=views.snapshot_title)
    moved = views.kernel_change(history).get(epoch)
    if moved is not None and epoch > 0:
        st.caption(f"After epoch {epoch} these weights have moved {100 * moved:.0f}% of their initial size "
                   "away from where they started (‖W − W₀‖ / ‖W₀‖).")
    return epoch, history[epoch]


# ----------------------------------------------------------------------------- first layer
layers = views.conv_layer_info(model) if kind == "conv" else []
if kind in views.FIRST_LAYER_KINDS:
    heading, caption = views.first_layer_words(kind, layers)
    st.subheader(heading)
    frozen = bool(layers and layers[0]["frozen"])
    st.caption(caption)
    if frozen:  # the same in every epoch: no slider to step through, no "moved 0%"
        st.info(views.FROZEN_FIRST_LAYER)
        epoch, weights = None, views.first_layer_weight(model)
    elif kind == "mlp":
        u1, u2 = st.columns([1, 3], gap="large")
        n_units = u1.slider("Units shown", 8, 48, 24, step=8, key="kernels_units")
        with u2:
            epoch, weights = _epoch_slider("Epoch")
    else:
        epoch, weights = _epoch_slider("Epoch")
    tiles = views.first_layer_tiles(weights)
    if kind == "conv":  # (C, k, k): many small kernels
        titles, cols, px = (), GRID_COLS, 40
    elif kind == "logreg":  # (24, 28, 28): one template a letter
        titles, cols, px = list(LETTERS), TEMPLATE_COLS, 72
    else:  # the strongest hidden units' 28×28 weights
        units = views.strongest_units(history[max(history)] if history else weights, n_units)
        tiles, titles, cols, px = tiles[units], [f"unit {u}" for u in units], TEMPLATE_COLS, 72
    key = {"conv": "kernels_first", "logreg": "kernels_templates"}.get(kind, "kernels_units_fig")
    # the snapshot's name as a title only where no slider above says it ("after epoch 2" read twice)
    stepped = epoch is not None and len(history) >= 2
    st.plotly_chart(figures.weight_templates(tiles, titles, cols=cols, tile_px=px,
                                             title="" if stepped else
                                             views.FROZEN_TITLE if frozen else views.snapshot_title(epoch)),
                    width="content", key=key)
else:
    st.info("This model has neither convolutions nor a single weight layer to show.")

# ----------------------------------------------------------------------------- deeper layers
if kind == "conv" and len(layers) > 1:
    st.subheader("Deeper layers, channel by channel")
    st.caption("A deeper convolution reads *all* the feature maps of the layer before: it has one k×k kernel per "
               "(output channel, input channel) pair. Pick an input channel to see every kernel that reads it.")
    d1, d2 = st.columns([2, 1])
    names = [l["name"] for l in layers[1:]]
    by_name = {l["name"]: l for l in layers}
    layer_name = d1.selectbox("Layer", names, format_func=lambda n: by_name[n]["label"], key="kernels_layer")
    info = by_name[layer_name]
    channel = d2.number_input(f"Input channel (0–{info['in'] - 1})", 0, info["in"] - 1, 0, key="kernels_channel")
    with ui.guard("Could not show these kernels"):
        ks = views.conv_kernels(model, layer_name, int(channel))
        # 12 a row at 36 px: at 25 a row the 48 kernels of 3x3 were 27 px strips at 1,280 px, 16 px at 820
        st.plotly_chart(figures.weight_templates(ks, cols=GRID_COLS, tile_px=36,
                                                 title=f"the {info['out']} kernels that read channel {channel}"),
                        width="content", key="kernels_deep")

# ----------------------------------------------------------------------------- feature maps
st.subheader("Feature maps of one image")
if kind != "conv":
    st.info("This model has no convolutions, so it makes no feature maps. Choose a run of a convolutional model "
            "above (any but `logreg` and `mlp`), or train one, to see how each layer transforms an image.")
    st.stop()

if IMAGE_KEY not in st.session_state:
    st.session_state[IMAGE_KEY] = views.random_test_index(ds.test.targets, None, 0) or 0


def _random() -> None:
    letter = st.session_state.get("kernels_letter")
    seed = ui.state(ui.Keys.KERNELS_SEED, 0) + 1
    st.session_state[ui.Keys.KERNELS_SEED] = seed
    picked = views.random_test_index(ds.test.targets, None if letter is None else letter, seed)
    if picked is not None:  # the letters offered are those the test images hold
        st.session_state[IMAGE_KEY] = picked


# a row that wraps: as three columns of an 820-px window the button read "🎲 Random test im…"
pick = st.container(horizontal=True, vertical_alignment="bottom", gap="small")
pick.selectbox("Letter for the random pick", views.letters_present(ds.test.targets), index=None, placeholder="any letter",
               format_func=lambda i: LETTERS[i], key="kernels_letter", width=220)
pick.button("🎲 Random test image", on_click=_random, width="content")
index = pick.number_input(f"Test image (0–{len(ds.test) - 1})", 0, len(ds.test) - 1, key=IMAGE_KEY, width=200)

image = unit_pixels(ds.test.images[int(index)])
maps = []
with ui.guard("Could not compute the feature maps"):
    maps = views.feature_maps(model, image)
# two fixed-width boxes in a row that wraps: the maps beside the image from a window of about
# 1,400 px (sidebar open), under it in a narrower one (as columns, an 820-px window left the image
# 66 px wide, its title cut to "test imag")
row = st.container(horizontal=True, gap="medium")
left = row.container(width=IMAGE_PX, key="kernels_image_box")
right = row.container(width=MAPS_PX, key="kernels_maps_box")
with left:
    st.plotly_chart(figures.single_image(image, f"test image {index}: {LETTERS[ds.test.targets[int(index)]]}",
                                         height=240), width="stretch", key="kernels_input")
    st.caption("Each map is one kernel's response, stretched to its own range: bright where the kernel's pattern "
               "is present. Early maps still look like the hand; deeper ones are smaller and more abstract.")
with right:
    for i, (name, fmap) in enumerate(maps):
        tiles, titles = views.feature_map_tiles(fmap, MAX_MAPS)
        c, h, w = fmap.shape
        more = f" (the first {len(tiles)} shown)" if c > len(tiles) else ""
        st.markdown(f"**conv {i + 1}** ({name}): {c} maps of {h}×{w}{more}")
        st.plotly_chart(figures.tile_grid(tiles, titles, cols=MAPS_PX // 60, tile_px=60, per_tile_scale=True,
                                          colorscale="Viridis", font_size=10),
                        width="content", key=f"kernels_maps_{i}")
