"""Map: the test images embedded in 2-D at one layer of a run's model; click a point to see its image,
select a region to see the images there."""
import streamlit as st

from signlab import figures, ui, views
from signlab.labels import LETTERS, unit_pixels
from signlab.teach import MAP_DETAILS, MAP_INTRO

IMAGE_KEY = "map_image"  # the image shown in the panel (a click sets it)
REGION_LIMIT = 48  # thumbnails drawn on a zoomed region
LINK_READ = "map_link_read"  # the link's layer was read (once a session)

st.title("🗺️ Map of the test images")  # "Map" in the sidebar; "feature maps" are the Kernels page's
ui.explain(MAP_INTRO, MAP_DETAILS)

run = ui.run_picker(help="Only runs with at least one finished epoch have weights to map.")
if run is None:
    st.stop()
model = ui.or_stop(f"Could not load run {run.id}", ui.load_model, run)
ds = ui.dataset()
layers = views.map_layers(model)
by_key = {layer.key: layer for layer in layers}

# a row that wraps: in an 820-px window two columns cut the embedding choice to "t-SNE (slow"
row = st.container(horizontal=True, vertical_alignment="bottom", gap="medium")
layer_key = ui.map_layer_key(run.id)
# a link (or a refresh) names one: read on the page's first run in the session only (a run picked
# later keeps its own layer, and the link's layer of the run before is no warning about this one)
if not st.session_state.get(LINK_READ) and "layer" in st.query_params:
    linked = st.query_params["layer"]
    if linked in by_key:
        st.session_state[layer_key] = linked
    else:
        # the default by the name the Layer box gives it ("the default 'hidden' is used" named a code's key)
        st.warning(views.LinkProblem("layer", linked, "is not a layer of this run's model",
                                     by_key[views.default_layer(model)].label).message(ui.md), icon="⚠️")
st.session_state[LINK_READ] = True
if st.session_state.get(layer_key) not in by_key:
    st.session_state[layer_key] = views.default_layer(model)
layer = row.selectbox("Layer", list(by_key), format_func=lambda k: by_key[k].label, key=layer_key, width=480,
                      help="The last hidden layer is what the classifier reads: the network's final picture of "
                           "the image.")
st.query_params["layer"] = layer  # a refresh or a shared link opens this layer again
method = row.segmented_control("Embedding", list(views.MAP_METHODS), default="pca", required=True, key="map_method",
                               format_func=lambda m: views.MAP_METHOD_NAMES[m], width="content") or "pca"

wait = None  # t-SNE's measured seconds here, read where its prompt shows
gate = st.empty()  # always made, like the progress slot: the chart's position never shifts
if method == "tsne" and not ui.map_cached(run, layer, method):
    with gate.container():
        wait = ui.tsne_seconds()  # read once: the prompt says it, the progress bar measures against it
        st.info(views.tsne_wait_text(wait, len(ds.test)), icon="⏱️")
        pressed = st.button("Compute the t-SNE map", type="primary", key=f"map_go_{run.id}_{layer}")
    if not pressed:
        st.session_state[ui.Keys.MAP_BOX_HIDDEN] = True
        st.stop()

progress_slot = st.empty()  # always there: the chart below keeps its place whether the map was cached or not
fm = ui.or_stop("Could not compute the map", ui.feature_map, run, layer, method, progress_slot, wait)
gate.empty()  # the prompt and its button go once the map is there (they stayed above it until a rerun)
heap = views.map_pile(fm)
st.caption(views.map_caption(fm, method, heap, members=views.network_count(model)))

# fixed-width boxes in a row that wraps: side by side in a 1,280-px window, and in a narrower one the
# chosen image moves under the map (as columns, both were squeezed at 820 px)
plots = st.container(horizontal=True, gap="small")
left = plots.container(width=560, key="map_box")
right = plots.container(width=240, key="map_chosen_box")
with left:
    fig = figures.feature_map(fm.coords, fm.y_true, fm.y_pred, fm.probs.max(1),
                              centres=views.class_centres(fm.coords, fm.y_true, heap.mask if heap else None),
                              pile=(heap.x, heap.y, f"{heap.count:,} images here") if heap else None)
    event = st.plotly_chart(fig, on_select="rerun", selection_mode=("points", "box", "lasso"), key="map_chart",
                            width="stretch")
picked = views.point_indices(event.selection.points if event else None)
picked = [i for i in picked if i < len(fm.y_true)]
signature = (run.id, layer, method, tuple(picked[:50]), len(picked))
if picked and st.session_state.get(ui.Keys.MAP_SEEN) != signature:
    st.session_state[ui.Keys.MAP_SEEN] = signature
    st.session_state[IMAGE_KEY] = picked[0]  # a click (or a region's first image) fills the panel

if not 0 <= int(st.session_state.get(IMAGE_KEY, -1)) < len(ds.test):
    st.session_state[IMAGE_KEY] = int(fm.wrong[0]) if len(fm.wrong) else 0  # start on a mistake
elif st.session_state.pop(ui.Keys.MAP_BOX_HIDDEN, False):
    # the box was not drawn on the last rerun (the t-SNE prompt stopped it), so the browser forgot its
    # number and drew the new box at 0 while the panel showed the kept image (seen in Chromium):
    # written again, the value is sent to the browser with the box
    st.session_state[IMAGE_KEY] = int(st.session_state[IMAGE_KEY])

with right:
    st.markdown("**The chosen image**")
    index = int(st.number_input(f"Test image (0–{len(ds.test) - 1})", 0, len(ds.test) - 1, key=IMAGE_KEY,
                                help="Click a point on the map, or type an image number."))
    true, pred = int(fm.y_true[index]), int(fm.y_pred[index])
    ok = true == pred
    st.plotly_chart(figures.single_image(unit_pixels(ds.test.images[index]), f"test image {index}", height=230),
                    width="stretch", key="map_image_fig")
    st.markdown(f"True letter **{LETTERS[true]}**, predicted **{LETTERS[pred]}** "
                + ("✅" if ok else "❌ (misclassified)"))
    st.plotly_chart(figures.probability_bars(views.top_k(fm.probs[index], 5), title="Probabilities (top 5)"),
                    width="stretch", key="map_probs")
    if tie := views.tie_note(fm.probs[index]):
        st.caption(tie)

if len(picked) > 1:
    st.subheader(f"The region you selected: {len(picked):,} images")
    shown = views.spread_sample(fm.coords, picked, REGION_LIMIT)
    region = views.map_region(fm.coords, fm.y_true, fm.y_pred, picked, len(shown))
    thumbs = [(float(fm.coords[i, 0]), float(fm.coords[i, 1]), ds.test.images[i]) for i in shown]
    st.caption(region.caption)
    st.plotly_chart(figures.feature_map(fm.coords[region.mask], fm.y_true[region.mask], fm.y_pred[region.mask],
                                        thumbnails=thumbs, zoom=region.zoom, height=560,
                                        title="Zoomed in: the images themselves"),
                    width="stretch", key="map_region")
elif note := views.map_selection_note(event.selection if event else None, picked):
    {"caption": st.caption, "info": st.info}[note[0]](note[1])
