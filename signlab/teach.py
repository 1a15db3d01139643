"""The lecture's teaching: what each page shows, in plain words, with the maths where it belongs.

Each page opens with a short ``*_INTRO`` (two or three sentences: what you see, what to try) and
a collapsible ``*_DETAILS`` with the equations (Markdown with LaTeX). Keeping the texts here keeps
the pages thin and lets the tests check that every page carries its explanation.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

from .labels import NUM_CLASSES
from .preprocess import TTA_FRAMINGS, TTA_VIEWS, TTA_WORDS

HOME_INTRO = (
    "**signlab** teaches how image classifiers learn, by doing. You will train models that read "
    "American Sign Language letters from 28×28 pixel photos of hands: first a *logistic regression* "
    "that scores each letter with one weight per pixel, then *convolutional networks* that learn their "
    "own filters. Start with the **Guided tour**, or jump to any page in the menu (on the left; on a phone, "
    "behind the » at the top)."
)

DATA_INTRO = (
    "Each image is a 28×28 grid of grey levels, a hand cropped from a photo: stored as 0 (black) to 255 "
    "(white) in the CSV, shown here divided by 255, so from 0 to 1. "
    "There are 24 letters: J and Z need motion, so they are missing. Reshuffle the samples, filter one "
    "letter, and look at the *mean image* of each letter: the average hand the models will have to tell apart."
)
DATA_DETAILS = r"""
An image is a vector $x \in \mathbb{R}^{784}$ (28 × 28 pixels, row by row). The training set has
27,455 images, the test set 7,172. Before a model sees an image, signlab *standardises* it:

$$\tilde{x} = \frac{x - \operatorname{mean}(x)}{\operatorname{std}(x)}$$

so that a dark photo and a bright one of the same hand look alike to the model.

**A caution:** the 34,627 images were made from only 1,704 photos (each cropped, filtered, rotated
and brightened 20 ways), and test images share source photos with training images. So a test
accuracy near 100% says little about a new photo of *your* hand.
"""

TRAIN_INTRO = (
    "Pick an architecture and press **Start**: the model sees the training images in small *batches*, "
    "and after each batch it nudges its weights to lower the *loss*. Watch the loss fall and the accuracy "
    "rise. The default (preset *fast*) gives a strong model quickly (the page says how long on this server); "
    "the preset *lecture* trains the "
    "lecture's ConvNet as written, flaw included."
)
TRAIN_DETAILS = r"""
**Scores.** A model maps an image $x$ to 24 scores (logits) $z = f_\theta(x)$. For multiclass
logistic regression $f$ is linear: stacking $N$ images as the rows of $X$, the scores are
$$Z = XW + b, \qquad W \in \mathbb{R}^{784 \times 24},$$
one column of weights (a 28×28 *template*) per letter.

**Softmax** turns scores into probabilities:
$$p_k = \frac{e^{z_k}}{\sum_{j=1}^{24} e^{z_j}}.$$

**Cross-entropy loss** is small when the true letter $y$ gets a high probability:
$$L = -\frac{1}{N}\sum_{i=1}^{N} \log p_{y_i}(x_i).$$
With *label smoothing* $\varepsilon$ (the *fast* preset's 0.1) the target is not all on $y$: it keeps
$1 - \varepsilon$ there and spreads $\varepsilon$ over all 24 letters, so the model is never pushed to be
100% sure. Its training loss then cannot fall below about 0.6 (the entropy of that target) and levels
off there instead of at 0; the validation loss is plain cross-entropy.

**Training** repeats, for each batch $B$: $\theta \leftarrow \theta - \eta\, \nabla_\theta L_B$
(Adam and AdamW scale this step per weight; Muon, for a convolution's filters, makes the step move
every direction of them by the same amount). $\eta$ is the *learning rate*: too small and learning
crawls, too large (try 10) and learning breaks down: the loss jumps about or sticks near
$\ln 24 \approx 3.2$, and accuracy falls to chance (about 4%). Should the loss ever become infinite,
NaN or larger than 10,000, the run stops and ends as *diverged*.

**An epoch** is one pass over all training images. *Validation* accuracy is measured on images the
model did not train on; if training accuracy keeps rising while validation stalls, it is overfitting.

**An ensemble** of $K$ networks, each trained from its own random start, predicts the average
$\bar p_k = \frac{1}{K}\sum_{m=1}^{K} p^{(m)}_k$. The members make different mistakes on unfamiliar
inputs, so the average is steadier: the *robust* preset trains three.
"""

EVALUATE_INTRO = (
    "How good is a trained model, and where does it go wrong? The **confusion matrix** counts, for each "
    "true letter (row), which letter the model predicted (column): the diagonal is right, everything else "
    "a mistake. **Click a cell** to see the test images behind it."
)
EVALUATE_DETAILS = r"""
**Accuracy** is the share of test images predicted right. Per letter $k$:
$$\text{precision}_k = \frac{TP_k}{TP_k + FP_k}, \quad \text{recall}_k = \frac{TP_k}{TP_k + FN_k}, \quad
F_1 = \frac{2\,\text{precision}\cdot\text{recall}}{\text{precision} + \text{recall}}.$$
Precision: when the model says $k$, how often is it right? Recall: of the real $k$s, how many did it find?

The lecture's ConvNet puts a ReLU on its output scores. A letter whose score goes negative gets zero
gradient and stops learning; when all 24 scores are 0, the model picks the first letter, **A**. In its
confusion matrix that shows as a column of red cells under A, one for each letter it swallows.
"""

KERNELS_INTRO = (
    "A convolutional layer slides small *kernels* (small grids of weights: 5×5 in the lecture ConvNet's first "
    "layer, 3×3 in its later layers and in most other networks) over the image; each kernel "
    "responds to one pattern, such as an edge at some angle. Here you see each convolution's kernels "
    "(learned, except s2net's fixed first layer), how the first layer changed epoch by epoch where it is "
    "learned, and the *feature maps*: where in your chosen image each kernel fired."
)
KERNELS_DETAILS = r"""
**Convolution.** Output pixel $(i, j)$ of feature map $c$ is a weighted sum of the input patch under
the kernel, plus a bias:
$$h_c(i,j) = b_c + \sum_{u,v} K_c(u,v)\, x(i+u,\, j+v).$$
A 5×5 kernel on a 28×28 image gives a 24×24 map. Red weights excite, blue inhibit.

**Max pooling** keeps the largest value of each 2×2 block: the map halves in size and small shifts
of the hand matter less.

**Parameters.** A convolution with $C_\text{in}$ input and $C_\text{out}$ output channels and $k\times k$
kernels has $C_\text{out}(C_\text{in} k^2 + 1)$ parameters, whatever the image size: the lecture's first
layer has $100 \cdot (1\cdot 25 + 1) = 2{,}600$. A fully connected layer from 784 pixels to 100 units
would need 78,500. Sharing one small kernel across the whole image is why ConvNets are compact.

For logistic regression there are no kernels: its 24 *weight templates* (one 28×28 image per letter)
are shown instead; a pixel that is red in the template of B votes for B when it is bright.
"""

CLASSIFY_INTRO = (
    "Draw a hand, upload a photo or take one with your camera, and see what the model thinks. You see the "
    "exact 28×28 input the model gets, its top five letters, and *why*: which pixels pushed it towards a "
    "letter. Real photos look different from the dataset, so expect mistakes, and read the warnings."
)
# the views a robust run reads are filled in from signlab.preprocess (<TTA_...>: raw text keeps the LaTeX braces)
CLASSIFY_DETAILS = r"""
**Finding the hand.** For a photo, MediaPipe's palm detector finds the palm and its hand-landmark
model the 21 joints of the hand (green); the crop starts as a square 1.5 times the box around them
(orange), where the edge of the photo is repeated if the square reaches past it (a thin one-shade
frame around a photo is left out first, so it is not repeated into a dark bar). A photo that is all
hand has no scene for the palm detector to search, so when it finds nothing the landmark model reads
the whole photo and says itself whether it sees a hand. When no hand is found, the crop starts as the
largest centred square.

**The hand's shape.** The 21 landmarks are a second reading of a photo, blind to light, background
and skin: placed with the wrist at the origin and the wrist-to-middle-knuckle distance as the unit
(a left hand mirrored), their 42 coordinates go into five small networks trained on the landmarks
found in the dataset's own training images, each from its own random start, and their answers are
averaged. The answer multiplies the two readings' probabilities, so a letter must look right both as
a picture and as a hand's shape. Drawings have no landmarks.

**Preprocessing.** Your image is turned grey, cropped to a square (move the crop with the sliders),
shrunk to 28×28 with antialiasing, then normalised exactly as the model's training images were:
standardised to zero mean and unit variance, and for robust runs histogram-equalised first, so a dim
or low-contrast photo spreads over the same grey levels as a bright one.

**Test-time augmentation** (robust runs). The model sees <TTA_WORDS>, since a left hand signs the
mirror image of a right hand's letter. The letters' probabilities are the average over all
<TTA_VIEWS>. The 28×28 input shown is the first of them.

**Grad-CAM** weighs the last convolution's feature maps $A^c$ by how much the chosen letter's score
$z_k$ rises with each of them, $\alpha_c = \operatorname{mean}_{i,j} \partial z_k / \partial A^c_{ij}$,
and shows $\operatorname{ReLU}(\sum_c \alpha_c A^c)$: the regions that speak *for* the letter.

**Occlusion** covers one patch at a time with grey and measures the letter's probability: where
covering hurts most, the model was looking.

For logistic regression the score is $z_k = \sum_p W_{pk}\,\tilde{x}_p$, so the map $W_{\cdot k} \odot \tilde{x}$
*is* the explanation: red pixels vote for the letter, blue against.
""".replace("<TTA_WORDS>", TTA_WORDS).replace("<TTA_VIEWS>", str(TTA_VIEWS))

RUNS_INTRO = (
    "Every training is saved as a *run*: its settings, its loss and accuracy history and its weights. "
    "Compare runs by overlaying their curves, give them names, download their weights, or delete the "
    "ones you no longer need."
)

SWEEPS_INTRO = (
    "Which learning rate? How much augmentation? A *sweep* trains many short runs with different settings "
    "and keeps the best, stopping hopeless trials early. Each trial is an ordinary run you can open."
)
SWEEPS_DETAILS = r"""
signlab uses **Optuna**: its TPE sampler proposes settings near the ones that did well so far, and the
median pruner stops a trial whose validation accuracy after an epoch is below the median of earlier
trials at that epoch. With a shared storage, several processes or machines work on one study.
"""


def live_hint(cfg: Any, epochs: Sequence[dict[str, Any]]) -> str:
    """A sentence that says what to notice on the Train page's live chart, for a run of ``cfg``
    (a ``TrainConfig``: its model and its augmentation)."""
    floor = smoothing_note(cfg)
    if not epochs:
        every = int(getattr(cfg, "log_every", 1) or 1)
        # "the loss of each batch" pointed at a line, averaged over 10 batches, that lay on the smoothed one
        step = ("the loss of each batch (noisy: every batch holds different images)" if every == 1 else
                f"the loss averaged over each {every} batches (a little noisy: every batch holds different images)")
        return f"The faint line is {step}; the thick line smooths it." + (" " + floor if floor else "")
    return " ".join(s for s in (_epoch_hint(cfg, epochs), floor) if s)


def smoothing_note(cfg: Any) -> str:
    """Why the training loss of a run with label smoothing levels off far above 0 ("" without):
    students read a loss stuck at 0.7 beside 99.7% accuracy as "it is not learning"."""
    eps = float(getattr(cfg, "label_smoothing", 0.0) or 0.0)
    if eps <= 0:
        return ""
    return (f"With label smoothing {eps:g} the training loss cannot fall below about {smoothing_floor(eps):.2f} "
            "(the target itself is not 100% sure); the validation loss is measured without it, so it can reach 0.")


def smoothing_target(eps: float, classes: int = NUM_CLASSES) -> float:
    """What label smoothing ``eps`` teaches a network to give the true letter: ``1 - eps + eps/K``."""
    return 1 - eps + eps / classes


def smoothing_floor(eps: float, classes: int = NUM_CLASSES) -> float:
    """The smallest cross-entropy with label smoothing ``eps`` over ``classes`` outputs: the entropy
    of the smoothed target (:func:`smoothing_target` on the true letter, ``eps/K`` on each other)."""
    if eps <= 0:
        return 0.0
    on, off = smoothing_target(eps, classes), eps / classes
    return float(-on * math.log(on) - (classes - 1) * off * math.log(off))


def guess_loss(classes: int = NUM_CLASSES) -> float:
    """The cross-entropy of a network that knows nothing and says so: the same probability for every
    letter, ``ln K`` (3.18 for 24 letters). A training loss above it is worse than a shrug."""
    return math.log(classes)


def _epoch_hint(cfg: Any, epochs: Sequence[dict[str, Any]]) -> str:
    last = epochs[-1]
    gap = last["train_accuracy"] - last["val_accuracy"]
    from .models import model_info  # here: the module of words stays free of torch until a run is shown

    loss = last.get("train_loss")
    if isinstance(loss, (int, float)) and math.isfinite(loss) and loss > 2 * guess_loss():
        # first: lr 10 with SGD ended at a loss of 100-250 and 37%, and the page called it overfitting
        return (f"The training loss ended at {loss:,.1f}, far above the {guess_loss():.2f} of a network that "
                "gives every letter the same chance: each step overshoots, so the weights jump about instead of "
                "settling. The learning rate is too large for this model; try one 10 times smaller.")

    if model_info(cfg.model).output_relu and last["val_accuracy"] < 0.8:
        return ("Notice how this run stalls: the ReLU on the output scores stops letters whose scores went "
                "negative from learning. Compare with `convnet`, the same layers without it.")
    if gap > 0.05:
        return (f"Training accuracy is {100 * gap:.0f} points above validation: the model starts to memorise "
                "its training images (overfitting).")
    if last["val_accuracy"] > last["train_accuracy"]:
        changes = _augmentation_words(cfg)
        seen = f"on changed images ({changes}) " if changes else ""
        return ("Validation accuracy is above training accuracy: training accuracy is measured "
                f"{seen}while the weights are still changing during the epoch, so training is the harder "
                "test here.")
    return ""


def _augmentation_words(cfg: Any) -> str:
    """What the run's augmentation does to a training image, in a few words ("" for none); the
    photo-like augmentation replaces the other (``Trainer._batch``)."""
    if cfg.augment_photo:
        return "made to look like photos: reframed, turned, mirrored and relit"
    if cfg.augment:
        return "each moved by up to 2 pixels" if cfg.augment_style == "shift" else "shifted, turned and scaled"
    return ""


RUNS_DETAILS = r"""
**What a run keeps.** Each run is a folder: `config.json` (every setting, so the run can be
repeated), `metrics.jsonl` (the loss of every few steps and the accuracy after each epoch),
`model.safetensors` (the weights after the last finished epoch) and `kernels/` (one file of the first
layer's weights per epoch, for the Kernels page).

**Comparing fairly.** Change one setting at a time and keep the seed: then a difference between two
curves comes from that setting, not from luck. Compare *validation* accuracy, not training accuracy,
which rewards memorising.

**Formats.** *safetensors* stores only numbers, so loading it cannot run code (unlike pickle-based
`.pt` files). *ONNX* describes the whole computation, per-image standardisation included, so other
programs and languages can run the model: its input is `image` (B, 1, 28, 28) with pixels in
$[0, 1]$, its output `logits` (B, 24).
"""

# The Kernels page's first layer: model kind -> (heading, caption); a conv caption names its layer's
# size. A fixed (frozen) layer's caption says what it is, not what trained kernels tend to look like.
_KERNELS_SLIDE = ("The {out} kernels of size {k}×{k} that slide over the image (layer {name}). Red weights respond "
                  "to bright pixels, blue to dark ones")
FIRST_LAYER = {
    "conv": ("First-layer kernels", _KERNELS_SLIDE + "; many trained kernels look like edge or blob detectors."),
    "logreg": ("Weight templates, one per letter",
               "Logistic regression has no kernels: each letter's score is a weighted sum of all 784 pixels, and "
               "its 784 weights form a 28×28 *template*. Red pixels vote for the letter when bright, blue against "
               "it. They are patches rather than hands: each holds what tells its letter apart from the other 23 "
               "(the Data page shows each letter's mean image). Slide through the epochs to watch the patches "
               "grow out of the random start."),
    "mlp": ("What the first hidden units look for",
            "Each unit of the MLP's first layer weighs all 784 pixels, so its weights are a 28×28 image. Shown: "
            "the units with the strongest weights. Unlike a convolution's kernel, each unit looks at the whole "
            "image at once and shares nothing with its neighbours."),
}
FROZEN_FIRST_LAYER_CAPTION = _KERNELS_SLIDE + "."

CALIBRATE_INTRO = (
    "A model trained on Sign Language MNIST has seen a few hands in one room only, so your hand, your room "
    "and your camera look new to it. Show it **a few photos of your own hand per letter** (three are plenty), "
    "press **Calibrate**, and within a minute (15 s on a free 2-core server, longer while others train) it is "
    "adapted to them and saved as a new run you can use on the Classify page. The run you start from stays "
    "as it was."
)
CALIBRATE_DETAILS = r"""
Calibration keeps everything the network learned about hands and retrains only its **last layer**:
the 24 weight vectors that turn the features of the last convolution, $f(x)$, into letter scores
$z_c = w_c^\top f(x) + b_c$. It minimises the cross-entropy on

- your photos, in the framings a robust run averages when it predicts (<TTA_FRAMINGS>) and
  their mirror images, and in 8 slightly changed copies (shifted, rotated, lighter, darker, blurred), and
- as many Sign Language MNIST images, so that letters you did not photograph, and the dataset itself,
  are not forgotten,

starting from the trained weights, with a small penalty $\lambda \lVert W - W_0 \rVert^2$ that keeps
it close to them. With an ensemble each network is adapted on its own. Only the last layer changes
(about 14,000 numbers a network), so its 100 steps, each over all the images at once, take seconds on
a laptop CPU.

**The hand's shape learns your hand too.** Where the hand detector finds the hand in your photos,
its 21 landmarks fine-tune a copy of the first of the hand-shape networks (300 small batches, half your hands,
slightly turned and scaled, half the dataset's), saved inside the new run; the Classify page then
multiplies the two adapted readings.

**How well it works.** On three development sets of other people's webcam photos, three photos a
letter, tested on the rest of each set (the robust preset, with the hand's shape): one signer in one
session went from 65% to 100%; one signer over several sessions (the hand in other places and sizes)
from 59-61% to 82-85%; two signers from 80% to 92-93% (the robust preset over two training runs). Photos
of one session are near duplicates of each other, so those numbers are an upper bound for photos
from another day, room or light: calibrate with a few photos from each place you use it in. Three
photos of a letter taken in different sessions taught the several-sessions signer's model more than
three from one sitting (89% against 85% of the rest).
""".replace("<TTA_FRAMINGS>", TTA_FRAMINGS)

MAP_INTRO = (
    "What did the network learn? Each of the 7,172 test images becomes one point: the activations of one "
    "layer, squeezed into two dimensions. Points are coloured by their **true** letter and ringed in black "
    "when the model got them wrong. Where a letter's points form their own island, the layer separates it "
    "from the others. Where colours mix, they may still be apart in the dimensions the map leaves out "
    "(PCA keeps only the two directions in which the points spread most, out of many, so even a model "
    "that reads every test image right shows its letters overlapping there); t-SNE's neighbours "
    "show it better. **Click a point** to see its image, or **drag a box** "
    "(box select, in the chart's toolbar) to see the images of a region."
)
MAP_DETAILS = r"""
**The layer.** An image's activations at a layer are a long vector (50 numbers at the lecture
ConvNet's last hidden layer, 784 for the raw pixels). A convolution's output has one map per
channel; each map is averaged to one number.

**PCA** finds the two directions in which the points spread most and projects onto them: fast
(its seconds go to running the model over the test images), and distances mean something, but
clusters that differ in other directions overlap.
**t-SNE** moves the points in 2-D until images that are neighbours in the layer are neighbours
on the map: clusters show clearly, but the distances between clusters and their sizes mean little.
It takes from about 20 s to a few minutes for the 7,172 test images, depending on the CPU (the page
says how long on this server; the map is then kept with the run).

**What to look for.** Logistic regression sees the *pixels*: on the pixel map the letters overlap
heavily, and a linear model can only cut this space with flat walls. A good ConvNet's last hidden
layer shows 24 separate islands. The lecture's ConvNet with a ReLU on its output collapses
whole letters onto one spot: their scores are all clipped to zero, so the model cannot tell them apart.
"""
HEALTH_CAPTION = (
    "**Gradient size** per layer: if it falls by orders of magnitude, that layer stops learning. **Weight size**: "
    "steady growth is normal, a jump is a warning."
)
# said only beside a model with ReLUs: logistic regression's caption explained a chart it does not have
DEAD_RELU_CAPTION = ("**Dead ReLU units**: units whose output was 0 for every image of the batch; a dead unit "
                     "passes no gradient back and may never recover.")
DEAD_LOGITS_CAPTION = (
    "The lecture ConvNet's flaw, live: the share of letter scores its output ReLU clips to 0. A clipped score "
    "passes no gradient, so that letter cannot be learned from those images, and an image whose 24 scores are "
    "all 0 gets the same prediction whatever it shows."
)
