"""An embedded default corpus: simple children's stories in the style of TinyStories, generated on the fly.

The generator fills templates with slots (names, animals, places, objects, colors, feelings, weather, foods, games,
problems, helpers, endings) along one of ten story arcs (a lost toy, sharing, a fear overcome, helping an animal,
making something, a spoiled picnic, a mess and an apology, a new friend, a race, a small adventure). Every step of
an arc has several sentence variants, most stories contain dialogue, and most end with a short lesson, so held-out
stories are new combinations of familiar parts and perplexity on them is meaningful.

Determinism: all choices come from one `random.Random(seed)` per split, in a fixed order, drawn from module-level
tuples; nothing depends on dict/set iteration order, `hash()` or the platform, so the same seed gives byte-identical
text on any machine with Python >= 3.10. `default_corpus(seed)` draws the train split from `Random(2 * seed)` and
the validation split from `Random(2 * seed + 1)`, skipping any story already in the train split, so the splits are
disjoint by construction; every split is also free of duplicates.

Sizes (defaults): 6,500 train stories (about 0.87M words, 1.1M tokens with the WordPiece tokenizer below
trained at vocab_size=4096, which stops at ~1,370 tokens because every word of the ~730-word vocabulary becomes one
token) and 325 validation stories (~5%); generating both takes well under a second on one CPU core.

`train_wordpiece_tokenizer` learns a bert-base-uncased-style WordPiece vocabulary. The `tokenizers` library's
`WordPieceTrainer` is not deterministic (merges with equal counts are ordered by hash-map iteration with a random
seed, so both the token set and the ids change from run to run, even single-threaded), so the merges are learned
here in Python with ties broken by the token strings, and the backend is a `WordPiece` model built from that vocab.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Collection, Iterable
from typing import Any

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")  # ids 0, 1, 2, 3, 4

GIRLS = ("Lily", "Mia", "Sue", "Anna", "Emma", "Lucy", "Sara", "Zoe", "Amy", "Ella", "Rosa", "Nina", "Maya", "Ruby",
         "Kim", "Jane", "Molly", "Daisy", "Lola", "Ivy", "Hana", "Grace", "Rose", "Bella", "Tia", "Nora", "Eva", "Jill")
BOYS = ("Tom", "Ben", "Max", "Sam", "Tim", "Leo", "Jack", "Finn", "Noah", "Jake", "Luke", "Ravi", "Omar", "Theo",
        "Kai", "Eli", "Dan", "Bob", "Joe", "Ned", "Toby", "Milo", "Hugo", "Ari", "Ken", "Pete", "Rex", "Will")
PET_NAMES = ("Pip", "Bo", "Spot", "Fluffy", "Coco", "Buddy", "Tiny", "Sunny", "Pepper", "Nibbles", "Whiskers",
             "Honey", "Biscuit", "Button", "Dot", "Ziggy", "Patch", "Muffin", "Peanut", "Bubbles", "Socks", "Maple")
ANIMALS = ("cat", "dog", "bunny", "bear", "fox", "duck", "frog", "mouse", "owl", "pig", "lamb", "puppy", "kitten",
           "squirrel", "turtle", "bird", "horse", "cow", "goat", "hedgehog", "deer", "monkey", "penguin", "chick")
TRAITS = ("little", "small", "kind", "happy", "curious", "shy", "brave", "silly", "gentle", "busy", "clever",
          "friendly", "playful", "quiet", "cheerful", "sleepy")
COLORS = ("red", "blue", "green", "yellow", "pink", "purple", "orange", "brown", "white", "shiny", "soft", "big")
OBJECTS = ("ball", "kite", "hat", "toy car", "teddy bear", "book", "doll", "drum", "toy boat", "blanket", "cup",
           "shell", "scarf", "box", "crayon", "balloon", "bike", "robot", "puzzle", "spoon", "block", "bucket",
           "wagon", "train", "whistle", "ribbon", "sock", "pebble", "feather", "bell")
PLACES = ("the park", "the forest", "the garden", "the beach", "the farm", "the pond", "the meadow", "the hill",
          "the playground", "the library", "the zoo", "the river", "the market", "the school yard", "the backyard",
          "the old barn", "the field", "the little town", "the lake", "the woods", "the orchard", "the sandbox")
SPOTS = ("under a big tree", "behind a rock", "in the tall grass", "near the fence", "under the slide",
         "by the water", "in a bush", "next to a bench", "under some leaves", "behind the shed", "in a hole",
         "on a log", "under the table", "near the flowers")
OPENINGS = ("Once upon a time", "One day", "One sunny morning", "On a rainy day", "One windy afternoon",
            "One cold winter day", "On a warm summer evening", "Long ago", "One bright spring morning",
            "On a snowy day", "One cloudy day", "One quiet night", "Early one morning", "One fall afternoon")
WEATHER = ("The sun was warm.", "The sky was blue and clear.", "The wind was blowing softly.", "It was a bit cold.",
           "Birds were singing in the trees.", "The air smelled like flowers.", "Little clouds were in the sky.",
           "The leaves were red and gold.", "The grass was wet with rain.", "Snow covered the ground.")
INTRO_DETAILS = ("{He} lived in a small house near {place} with {his} {helper}.",
                 "{H} loved {food} more than anything.", "{H} had a {color} {obj} that {he} loved.",
                 "Every day, {H} liked to {game}.", "{H} was {trait} and always smiled.",
                 "{H} liked to ask a lot of questions.", "{H} had many friends, but {F} was the best one.")
TRANSITIONS = ("The next day, {H} went out again.", "Later that week, something else happened.",
               "A few days later, {H} woke up with a smile.", "After lunch, {H} wanted to play some more.",
               "The next morning, {H} ran outside.", "That afternoon, {H} met {F} again.")
HELPERS = ("mom", "dad", "grandma", "grandpa", "big sister", "big brother", "teacher", "aunt", "uncle")
WISE = ("a wise old owl", "a kind farmer", "a friendly dog", "a little bird", "an old turtle", "a nice lady",
        "a tall giraffe", "a happy cow")
FOODS = ("apples", "cookies", "cake", "soup", "bread", "berries", "carrots", "pie", "sandwiches", "grapes",
         "pancakes", "cheese", "honey", "nuts", "muffins", "oranges")
GAMES = ("play tag", "jump in puddles", "build a tower", "draw pictures", "sing songs", "look for bugs",
         "fly a kite", "dig in the sand", "ride bikes", "pick flowers", "read a book", "play hide and seek",
         "roll down the hill", "splash in the water", "dance", "count the clouds", "throw a ball", "make a necklace")
FEARS = (("the dark", "the room was dark"), ("big waves", "the waves were big"), ("the tall slide", "the slide was tall"),
         ("loud thunder", "the thunder was loud"), ("the deep water", "the water was deep"),
         ("the big dog next door", "the dog was big"), ("the first day at school", "school was new"),
         ("climbing trees", "the tree was high"), ("the noisy train", "the train was noisy"))
TROUBLES = (("a kitten", "stuck in a tree", "climbed up and got the kitten down"),
            ("a baby bird", "on the ground with a hurt wing", "made a soft bed of leaves for the bird"),
            ("a little duck", "lost and far from its mother", "walked the duck back to the pond"),
            ("a puppy", "stuck in the mud", "pulled the puppy out of the mud"),
            ("a turtle", "on its back and could not turn over", "gently turned the turtle over"),
            ("a bee", "caught in a spider web", "helped the bee get free"),
            ("a lamb", "stuck behind the fence", "opened the gate for the lamb"),
            ("a small frog", "trapped in a bucket", "tipped the bucket so the frog could hop out"))
MAKES = (("a cake", "the cake fell flat", "mixed the flour and eggs again"),
         ("a sandcastle", "a wave knocked the sandcastle down", "built it again far from the water"),
         ("a card for {hisher} {helper}", "the paint spilled all over the card", "got a new paper and drew again"),
         ("a fort", "the fort fell down", "used bigger pillows and tried again"),
         ("a snowman", "the head rolled away", "made a new head and pushed it on"),
         ("a tall tower of blocks", "the tower fell over", "put the big blocks at the bottom"),
         ("a paper boat", "the boat got wet and soft", "folded a new boat with thick paper"),
         ("a bird house", "the roof would not stay on", "used more glue and held it tight"))
FEELINGS_GOOD = ("happy", "glad", "proud", "excited", "joyful", "cheerful", "thankful")
FEELINGS_BAD = ("sad", "upset", "worried", "grumpy", "scared", "lonely", "unhappy")
SAID = ("said", "said", "said", "called", "shouted", "whispered", "told {fhim}")
LESSONS = ("{H} learned that sharing makes everyone happy.", "{H} learned that friends help each other.",
           "{H} learned that it is good to be brave.", "{H} learned that trying again is important.",
           "{H} learned that telling the truth is the right thing to do.", "{H} learned to be kind to everyone.",
           "{H} learned that being careful is smart.", "{H} learned that a new friend can be the best gift.")
ENDINGS = ("From that day on, {H} and {F} were the best of friends.", "That night, {H} went to bed with a big smile.",
           "{H} never forgot that special day.", "It was the best day ever.", "And they all lived happily ever after.",
           "The sun went down, and it was time to go home.", "{H} hugged {F} and said, \"Thank you.\"",
           "Then they went home and ate {food} for dinner.", "{H} could not wait to play again tomorrow.")


def _character(rng: random.Random, *, friend: bool) -> dict[str, str]:
    """A child or a named animal, with its pronouns; keys are prefixed with 'f'/'F' for the friend."""
    kind = rng.randrange(3)
    if kind == 0:
        name, noun, female = rng.choice(GIRLS), "girl", True
    elif kind == 1:
        name, noun, female = rng.choice(BOYS), "boy", False
    else:
        name, noun, female = rng.choice(PET_NAMES), rng.choice(ANIMALS), rng.random() < 0.5
    he, him, his = ("she", "her", "her") if female else ("he", "him", "his")
    p = "f" if friend else ""
    P = "F" if friend else "H"
    return {P: name, f"{p}noun": noun, f"{p}he": he, f"{p}him": him, f"{p}his": his, f"{p}hisher": his,
            f"{p}He": he.capitalize(), f"{p}His": his.capitalize()}


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


class _Writer:
    """Accumulates sentences; `say` picks one template and fills it with the story slots."""

    def __init__(self, rng: random.Random, ctx: dict[str, Any]):
        self.rng, self.ctx, self.sentences = rng, ctx, []

    def say(self, *templates: str, **extra: str) -> None:
        template = self.rng.choice(templates)
        said = self.rng.choice(SAID).format(**self.ctx) if "{said}" in template else ""
        self.sentences.append(_cap(template.format(said=said, **self.ctx, **extra)))

    def maybe(self, probability: float, *templates: str, **extra: str) -> None:
        if self.rng.random() < probability:
            self.say(*templates, **extra)


def _lost(w: _Writer) -> None:
    w.say("{H} had a {obj}. {He} loved it very much.", "{H} had a {obj} that {he} took everywhere.",
          "{His} favorite toy was a {obj}.")
    w.say("One day, {H} and {F} went to {place} to {game}.", "{H} took the {obj} to {place} to play with {F}.")
    w.say("They played and played until the sun was low.", "They had so much fun.", "They laughed and ran around.")
    w.say("When it was time to go home, {H} could not find the {obj}.", "Then {H} looked down. The {obj} was gone!")
    w.say("\"Oh no! Where is my {obj}?\" {H} cried.", "{H} felt {bad}. \"I lost my {obj},\" {he} {said}.")
    w.say("\"Don't worry, I will help you look,\" {F} {said}.", "{F} held {his} hand. \"We will find it together.\"")
    for spot in w.rng.sample(SPOTS, 2):
        w.say("They looked {spot}, but it was not there.", "First they looked {spot}. Nothing.", spot=spot)
    w.say("At last, {F} saw something {spot}. It was the {obj}!", "Then {F} shouted, \"Look! It is {spot}!\"",
          spot=w.rng.choice(SPOTS))
    w.say("{H} was so {good}. {He} gave {F} a big hug.", "{H} jumped up and down. \"Thank you, {F}!\" {he} said.")
    w.maybe(0.8, "{H} learned that friends help each other.", "{H} learned to be careful with {his} things.")


def _share(w: _Writer) -> None:
    w.say("{H} had some {food} for a snack.", "{H}'s {helper} gave {him} a bag of {food}.",
          "{H} had a new {obj}. It was very nice.")
    w.say("{H} sat down in {place} to enjoy it.", "{H} went to {place} and sat on a bench.")
    w.say("{F} came by and looked at it.", "Then {F} walked over.", "Soon {Fdesc} came to say hello.")
    w.say("\"Can I have some too?\" {F} asked.", "\"Can I play with it too?\" asked {F}.", "\"Please, can I try?\" asked {F}.")
    w.say("\"No, it is mine!\" {H} {said}.", "{H} did not want to share. \"No,\" {he} {said}.")
    w.say("{F} looked down and felt {fbad}.", "{F} walked away slowly. {fHe} was {fbad}.")
    w.say("{H} thought about it. {He} did not feel good.", "{H} saw that {F} was {fbad}, and {he} felt {bad} too.")
    w.say("So {H} ran after {F}. \"Wait! We can share,\" {he} said.", "{H} said, \"I am sorry. Let's share.\"")
    w.say("{F} smiled a big smile.", "{F} was so {good}. \"Thank you!\" {fhe} said.")
    w.say("They shared and had fun together.", "Sharing was more fun than playing alone.")
    w.maybe(0.8, "{H} learned that sharing makes everyone happy.", "Now {H} and {F} share all the time.")


def _fear(w: _Writer) -> None:
    fear, fact = w.rng.choice(FEARS)
    w.say("{H} was scared of {fear}.", "There was one thing {H} did not like: {fear}.", fear=fear)
    w.say("{H} went to {place} with {his} {helper}.", "One day {H}'s {helper} took {him} to {place}.")
    w.say("{H} saw that {fact}. {He} stopped and held on tight.", "{Fact}, and {H} felt {bad}.", fact=fact,
          Fact=_cap(fact))
    w.say("\"I can't do it,\" {H} {said}.", "\"I am too scared,\" {he} {said} in a small voice.")
    w.say("{His} {helper} smiled. \"You are braver than you think.\"",
          "\"I will be right here with you,\" said {his} {helper}.", "\"Take a deep breath and try,\" said {his} {helper}.")
    w.maybe(0.6, "{F} was there too. \"You can do it, {H}!\" {fhe} called.", "{F} held {his} hand.")
    w.say("{H} took a deep breath. {He} tried, one small step at a time.", "{H} closed {his} eyes and counted to three.")
    w.say("It was not so bad after all! It was fun!", "{H} did it! {He} felt {good}.", "Soon {H} was laughing.")
    w.say("\"I did it!\" {H} shouted.", "\"Can we do it again?\" {H} asked with a big smile.")
    w.maybe(0.8, "{H} learned that it is good to be brave.", "Now {H} is not scared anymore.")


def _help(w: _Writer) -> None:
    animal, trouble, fix = w.rng.choice(TROUBLES)
    w.say("{H} and {F} were playing in {place}.", "{H} was walking to {place} with {F}.")
    w.say("Suddenly they heard a small sound.", "Then {H} heard a little cry.", "They heard a soft noise nearby.")
    w.say("They saw {animal} {trouble}.", "It was {animal}. It was {trouble}.", animal=animal, trouble=trouble)
    w.say("\"We have to help!\" {H} {said}.", "\"Poor thing,\" said {F}. \"What can we do?\"")
    w.maybe(0.5, "{H} ran to get {his} {helper}.", "They asked {wise} for help.")
    w.say("Together they {fix}.", "{H} {fix}, and {F} helped.", fix=fix)
    w.say("The animal was safe now. It looked very happy.", "Soon it was safe. It made a happy sound.")
    w.say("{H} and {F} felt {good}.", "\"We did it!\" {F} said, and they smiled.")
    w.maybe(0.8, "{H} learned to be kind to every animal.", "Helping others made them feel {good}.")


def _make(w: _Writer) -> None:
    thing, oops, fix = w.rng.choice(MAKES)
    thing = thing.format(**w.ctx)
    w.say("{H} wanted to make {thing}.", "{H} and {F} had an idea. They would make {thing}!", thing=thing)
    w.say("They got everything they needed.", "{H} worked hard, and {F} helped.", "They started right away.")
    w.say("But then {oops}.", "Oh no! {Oops}.", oops=oops, Oops=_cap(oops))
    w.say("{H} felt {bad}. \"Now it is ruined,\" {he} {said}.", "\"Let's not give up,\" said {F}.")
    w.maybe(0.5, "{His} {helper} came to see. \"Try again. You can do it,\" {he} heard.")
    w.say("So they {fix}.", "{H} had a new idea. {He} {fix}.", fix=fix)
    w.say("This time it worked!", "At last it was done, and it looked great.", "It was even better than before.")
    w.say("\"Look what we made!\" {H} {said}.", "{His} {helper} clapped. \"It is beautiful!\"")
    w.maybe(0.8, "{H} learned that trying again is important.", "They were very proud of their work.")


def _picnic(w: _Writer) -> None:
    w.say("{H} and {F} planned a picnic in {place}.", "{H}'s {helper} said they could have a picnic in {place}.")
    w.say("They packed {food} and a {color} blanket.", "{H} put {food} and juice in a basket.")
    w.say("But then dark clouds came, and it started to rain.", "Just as they got there, the rain began to fall.")
    w.say("\"Oh no, our picnic!\" {H} {said}.", "{H} was {bad}. \"Now we can't have fun,\" {he} said.")
    w.say("\"We can have a picnic inside!\" said {his} {helper}.", "{F} had an idea. \"Let's have it on the floor at home!\"")
    w.say("They spread the blanket on the living room floor.", "They ran home and made a little tent with chairs.")
    w.say("They ate {food} and told funny stories.", "They ate and laughed and decided to {game} inside.")
    w.say("When the rain stopped, they saw a big rainbow.", "Later the sun came out, and a rainbow was in the sky.")
    w.maybe(0.8, "It was the best picnic ever.", "{H} learned that fun can happen anywhere.")


def _mess(w: _Writer) -> None:
    w.say("{H} was playing with a {obj} in the house.", "{H} wanted to {game} in the kitchen.")
    w.say("{His} {helper} said, \"Please be careful.\"", "\"Not inside, please,\" said {his} {helper}.")
    w.say("But {H} did not listen.", "{H} said, \"Okay,\" but {he} kept playing.")
    w.say("Crash! A cup fell and broke.", "Bang! The flower pot fell on the floor.", "Splash! The milk spilled everywhere.")
    w.say("{H} felt {bad}. {He} wanted to hide.", "{H} froze. {His} face turned red.")
    w.say("{His} {helper} came in. \"What happened?\"", "Then {H} heard steps. It was {his} {helper}.")
    w.say("{H} took a deep breath. \"It was me. I am sorry,\" {he} said.", "\"I did it,\" {H} said softly. \"I am sorry.\"")
    w.say("{His} {helper} gave {him} a hug. \"Thank you for telling the truth.\"", "\"It is okay. Accidents happen,\" said {his} {helper}.")
    w.say("Together they cleaned up the mess.", "{H} helped to clean everything up.")
    w.maybe(0.8, "{H} learned that telling the truth is the right thing to do.", "Next time, {H} will play outside.")


def _new_friend(w: _Writer) -> None:
    w.say("{H} went to {place}, but {he} had no one to play with.", "{H} sat alone in {place}. {He} felt {bad}.")
    w.say("Then {he} saw {Fdesc}. {fHe} was new and very shy.", "Near a tree stood a {fnoun} named {F}.")
    w.say("\"Hello! I am {H}. What is your name?\" {H} asked.", "{H} walked over and said, \"Hi! Do you want to play?\"")
    w.say("\"I am {F},\" said the {fnoun} quietly.", "{F} looked up and smiled a little. \"Yes, please.\"")
    w.say("They decided to {game}.", "{H} showed {F} how to {game}.")
    w.say("They laughed and laughed.", "Soon they were running and giggling.", "{F} was not shy anymore.")
    w.maybe(0.6, "\"You are fun!\" {F} {said}.", "\"Can we play again tomorrow?\" asked {F}.")
    w.say("{H} felt {good}. {He} had a new friend.", "When it was time to go, they waved goodbye.")
    w.maybe(0.8, "{H} learned that a new friend can be the best gift.", "Saying hello was the best thing {H} did all day.")


def _race(w: _Writer) -> None:
    w.say("{H} and {F} wanted to have a race in {place}.", "\"Let's race to the big tree!\" {H} {said}.")
    w.say("\"Ready, set, go!\" they shouted.", "They counted to three and began to run.")
    w.say("{H} was fast, but {F} was fast too.", "They ran as fast as they could.")
    w.say("Then {F} tripped on a rock and fell down.", "Oh no! {F} slipped and hurt {fhisher} knee.")
    w.say("{H} could win the race, but {he} stopped.", "{H} looked back and saw {F} on the ground.")
    w.say("\"Are you okay?\" {H} asked. {He} helped {F} up.", "{H} ran back. \"Let me help you,\" {he} said.")
    w.say("They walked to the tree together, hand in hand.", "They finished the race side by side.")
    w.say("\"You are a good friend,\" {F} said.", "{F} smiled. \"Thank you for stopping.\"")
    w.maybe(0.8, "{H} learned that friends are more important than winning.", "Winning was not as good as helping.")


def _adventure(w: _Writer) -> None:
    w.say("{H} found an old map in a box.", "{H} saw a little path {spot}.", "{H} found a {color} key {spot}.",
          spot=w.rng.choice(SPOTS))
    w.say("\"Let's go on an adventure!\" {H} said to {F}.", "{H} asked {F}, \"Where do you think it goes?\"")
    w.say("They walked past {place} and over a small bridge.", "They went through {place}, looking at everything.")
    w.say("They saw {animals} and {wise}.", "On the way they met {wise}, who said hello.", animals=f"{w.rng.choice(ANIMALS)}s")
    w.maybe(0.6, "{F} felt {fbad}. \"Is it far?\" {fhe} asked.", "\"I am getting tired,\" said {F}.")
    w.say("At the end they found a secret garden full of flowers.", "At last they found a little pond with a family of ducks.",
          "They found a tree full of {food}!", "They found a small box with shiny stones inside.")
    w.say("\"Wow!\" they said together.", "{H} and {F} were so {good}.")
    w.say("They stayed and played until it was time to go home.", "They told {H}'s {helper} all about it at dinner.")
    w.maybe(0.7, "It was a great adventure.", "{H} wanted to go on another adventure soon.")


ARCS = (_lost, _share, _fear, _help, _make, _picnic, _mess, _new_friend, _race, _adventure)


def generate_story(rng: random.Random) -> str:
    """Generate one story, consuming draws from `rng` in a fixed order.

    Args:
        rng: the random source; the same state always gives the same story.

    Returns:
        The story as one paragraph of sentences separated by single spaces.

    Example:
        >>> generate_story(random.Random(0)) == generate_story(random.Random(0))
        True
    """
    ctx: dict[str, Any] = _character(rng, friend=False)
    ctx.update(_character(rng, friend=True))
    if ctx["F"] == ctx["H"]:
        ctx["F"] = rng.choice(PET_NAMES if ctx["H"] not in PET_NAMES else BOYS if ctx["fhe"] == "he" else GIRLS)
    ctx["Fdesc"] = ctx["F"] if ctx["fnoun"] in ("girl", "boy") else f"{ctx['F']} the {ctx['fnoun']}"
    ctx.update(obj=rng.choice(OBJECTS), place=rng.choice(PLACES), helper=rng.choice(HELPERS), wise=rng.choice(WISE),
               food=rng.choice(FOODS), game=rng.choice(GAMES), color=rng.choice(COLORS), good=rng.choice(FEELINGS_GOOD),
               bad=rng.choice(FEELINGS_BAD), fbad=rng.choice(FEELINGS_BAD), trait=rng.choice(TRAITS))
    if rng.random() < 0.5:
        ctx["obj"] = f"{ctx['color']} {ctx['obj']}"
    w = _Writer(rng, ctx)
    opening = rng.choice(OPENINGS)
    w.say(opening + ", there was a {trait} {noun} named {H}.",
          opening + ", a {trait} {noun} named {H} lived near " + ctx["place"] + ".",
          "{H} was a {trait} {noun}. " + opening + ", {he} woke up early.")
    w.maybe(0.6, *WEATHER)
    w.maybe(0.5, *INTRO_DETAILS)
    first = rng.randrange(len(ARCS))
    if ARCS[first] is not _new_friend:
        w.maybe(0.4, "{H} liked to {game} with {his} friend {F}.", "{His} best friend was {Fdesc}.")
    ARCS[first](w)
    if rng.random() < 0.35:  # a second episode with new props
        ctx.update(obj=rng.choice(OBJECTS), place=rng.choice(PLACES), food=rng.choice(FOODS), game=rng.choice(GAMES),
                   good=rng.choice(FEELINGS_GOOD), bad=rng.choice(FEELINGS_BAD))
        w.say(*TRANSITIONS)
        ARCS[(first + 1 + rng.randrange(len(ARCS) - 1)) % len(ARCS)](w)
    w.maybe(0.7, *ENDINGS)
    return " ".join(w.sentences)


def generate_stories(num_stories: int, seed: int = 0, *, exclude: Collection[str] = ()) -> list[str]:
    """Generate `num_stories` distinct stories from `random.Random(seed)`.

    Args:
        num_stories: how many stories (>= 1).
        seed: the seed of the single random stream; same seed, same list, byte for byte.
        exclude: stories to skip (and redraw) if generated, e.g. another split's stories.

    Returns:
        A list of distinct story strings, none of them in `exclude`.

    Example:
        >>> len(generate_stories(3, seed=1))
        3
    """
    if isinstance(num_stories, bool) or not isinstance(num_stories, int) or num_stories < 1:
        raise ValueError(f"`num_stories` must be an integer >= 1, got {num_stories!r}.")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"`seed` must be an integer, got {seed!r}.")
    rng = random.Random(seed)
    stories: list[str] = []
    seen = set(exclude)
    attempts = 0
    while len(stories) < num_stories:
        attempts += 1
        if attempts > 2 * num_stories + 1000:
            raise RuntimeError("the story generator keeps repeating itself; this should not happen")
        story = generate_story(rng)
        if story not in seen:  # membership only: no dependence on set order
            seen.add(story)
            stories.append(story)
    return stories


def default_corpus(seed: int = 0, train_stories: int = 6500, validation_stories: int = 325):
    """The embedded default corpus as a `datasets.DatasetDict` with "train" and "validation" splits.

    Train comes from `Random(2 * seed)`, validation from `Random(2 * seed + 1)` with every train story excluded, so
    the splits never share a story. With the defaults, train has about 1.1M WordPiece tokens and validation ~5%.

    Args:
        seed: the corpus seed (an integer >= 0).
        train_stories: number of train stories (>= 1).
        validation_stories: number of validation stories (>= 1).

    Returns:
        `DatasetDict({"train": Dataset, "validation": Dataset})`, one story per row in the column "text".

    Example:
        >>> corpus = default_corpus(train_stories=10, validation_stories=2)
        >>> corpus["train"].num_rows, corpus["validation"].num_rows
        (10, 2)
    """
    from datasets import Dataset, DatasetDict

    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"`seed` must be an integer >= 0, got {seed!r}.")
    for name, value in (("train_stories", train_stories), ("validation_stories", validation_stories)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"`{name}` must be an integer >= 1, got {value!r}.")
    train = generate_stories(train_stories, seed=2 * seed)
    validation = generate_stories(validation_stories, seed=2 * seed + 1, exclude=frozenset(train))
    return DatasetDict({"train": Dataset.from_dict({"text": train}),
                        "validation": Dataset.from_dict({"text": validation})})


def _bert_backend(vocab: dict[str, int]):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    backend = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]", continuing_subword_prefix="##",
                                         max_input_chars_per_word=100))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece(prefix="##")
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    return backend


def _word_counts(texts: list[str]) -> Counter:
    """Counts of pre-tokenized, BERT-normalized words (order of first occurrence is irrelevant: sorted later)."""
    probe = _bert_backend({token: index for index, token in enumerate(SPECIAL_TOKENS)})
    counts: Counter = Counter()
    for start in range(0, len(texts), 512):
        chunk = probe.normalizer.normalize_str("\n".join(texts[start:start + 512]))
        counts.update(word for word, _ in probe.pre_tokenizer.pre_tokenize_str(chunk))
    return counts


def _learn_merges(counts: Counter, budget: int, min_frequency: int) -> list[str]:
    """BPE merges over "##"-prefixed symbols, highest count first, ties broken by the smaller (left, right) strings."""
    import heapq

    types = sorted(counts)  # a fixed order, independent of insertion order
    freq = [counts[t] for t in types]
    words = [[t[0]] + ["##" + c for c in t[1:]] for t in types]
    pair_count: dict[tuple[str, str], int] = {}
    pair_words: dict[tuple[str, str], set[int]] = {}

    def add(index: int, sign: int) -> None:
        symbols = words[index]
        for pair in zip(symbols, symbols[1:]):
            pair_count[pair] = pair_count.get(pair, 0) + sign * freq[index]
            if sign > 0:
                pair_words.setdefault(pair, set()).add(index)

    for index in range(len(words)):
        add(index, 1)
    heap = [(-count, pair) for pair, count in pair_count.items()]
    heapq.heapify(heap)  # heap order depends only on the (count, pair) values, not on insertion order
    new_tokens: list[str] = []
    seen: set[str] = set()
    while heap and len(new_tokens) < budget:
        negative, pair = heapq.heappop(heap)
        if pair_count.get(pair, 0) != -negative or -negative <= 0:
            continue  # stale entry
        if -negative < min_frequency:
            break
        left, right = pair
        merged = left + right[2:]
        if merged not in seen:
            seen.add(merged)
            new_tokens.append(merged)
        touched: set[tuple[str, str]] = set()
        for index in sorted(pair_words.pop(pair, ())):
            symbols = words[index]
            if not any(a == left and b == right for a, b in zip(symbols, symbols[1:])):
                continue
            add(index, -1)
            out, i = [], 0
            while i < len(symbols):
                if i + 1 < len(symbols) and symbols[i] == left and symbols[i + 1] == right:
                    out.append(merged)
                    i += 2
                else:
                    out.append(symbols[i])
                    i += 1
            words[index] = out
            add(index, 1)
            touched.update(zip(out, out[1:]))
            touched.update(zip(symbols, symbols[1:]))
        pair_count.pop(pair, None)
        for changed in sorted(touched):
            if pair_count.get(changed, 0) > 0:
                heapq.heappush(heap, (-pair_count[changed], changed))
    return new_tokens


def train_wordpiece_tokenizer(texts: Iterable[str], vocab_size: int = 4096, min_frequency: int = 2):
    """Train a deterministic bert-base-uncased-style WordPiece tokenizer.

    BertNormalizer (lowercase, strip accents), BertPreTokenizer (split on whitespace and punctuation), WordPiece with
    "##" continuing subwords, a WordPiece decoder and a "[CLS] $A [SEP]" post-processor. Ids: [PAD]=0, [UNK]=1,
    [CLS]=2, [SEP]=3, [MASK]=4, then every character of the texts (sorted) and its "##" form, then merged tokens in
    merge order. Merges are learned here with ties broken by string order (the `tokenizers` WordPieceTrainer breaks
    ties by hash-map order and changes from run to run), so the same texts always give the same vocabulary. Training
    stops at `vocab_size` or when no pair occurs `min_frequency` times, so the vocabulary can be smaller than asked
    for on a small-vocabulary corpus: use `len(tokenizer)` for the model's vocab size.

    Args:
        texts: the training texts (at least one non-empty).
        vocab_size: the maximum vocabulary size; at least 5 special tokens + 2 per distinct character.
        min_frequency: a pair must occur this many times (weighted by word counts) to be merged.

    Returns:
        A `transformers.PreTrainedTokenizerFast` with pad/unk/cls/sep/mask set, bos = [CLS] and eos = [SEP];
        `save_pretrained` + `AutoTokenizer.from_pretrained` round-trip offline.

    Example:
        >>> tok = train_wordpiece_tokenizer(generate_stories(50), vocab_size=500)
        >>> tok.convert_ids_to_tokens([0, 1, 2, 3, 4])
        ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']
    """
    from transformers import PreTrainedTokenizerFast

    if isinstance(texts, str):
        raise ValueError("`texts` must be an iterable of strings, not a single string.")
    texts = list(texts)
    if not any(isinstance(t, str) and t.strip() for t in texts):
        raise ValueError("`texts` is empty: give at least one non-empty string.")
    if not all(isinstance(t, str) for t in texts):
        raise ValueError("`texts` must contain only strings.")
    if isinstance(min_frequency, bool) or not isinstance(min_frequency, int) or min_frequency < 1:
        raise ValueError(f"`min_frequency` must be an integer >= 1, got {min_frequency!r}.")
    counts = _word_counts(texts)
    alphabet = sorted({c for word in counts for c in word})
    base = list(SPECIAL_TOKENS) + alphabet + ["##" + c for c in alphabet]
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < len(base):
        raise ValueError(f"`vocab_size` must be an integer >= {len(base)} (5 special tokens + {len(alphabet)} "
                         f"characters and their '##' forms), got {vocab_size!r}.")
    vocab = {token: index for index, token in enumerate(base)}
    for token in _learn_merges(counts, vocab_size - len(base), min_frequency):
        if token not in vocab:
            vocab[token] = len(vocab)
    return PreTrainedTokenizerFast(
        tokenizer_object=_bert_backend(vocab), pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]", bos_token="[CLS]", eos_token="[SEP]")


def count_tokens(texts: Iterable[str], tokenizer) -> int:
    """Count the tokens of `texts` without special tokens.

    Args:
        texts: the texts to count.
        tokenizer: a `transformers` tokenizer (e.g. from `train_wordpiece_tokenizer`).

    Returns:
        The total number of tokens.

    Example:
        >>> stories = generate_stories(20)
        >>> count_tokens(stories, train_wordpiece_tokenizer(stories, vocab_size=300)) > 0
        True
    """
    if isinstance(texts, str):
        raise ValueError("`texts` must be an iterable of strings, not a single string.")
    texts = list(texts)
    total = 0
    for start in range(0, len(texts), 1024):
        encoded = tokenizer(texts[start:start + 1024], add_special_tokens=False)["input_ids"]
        total += sum(len(ids) for ids in encoded)
    return total


__all__ = ["count_tokens", "default_corpus", "generate_stories", "generate_story", "train_wordpiece_tokenizer"]
