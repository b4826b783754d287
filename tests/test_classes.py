import pytest

from dreamer.classes import MAX_TEXT, RequestError, parse


@pytest.mark.parametrize("text,index", [
    ("volcano", 980), ("Volcanos", 980), ("VOLCANOES", 980), ("pizzza", 963), ("pizzzza", 963),
    ("tabby cat", 281), ("daisies", 985), ("jelly fish", 107), ("  Espresso! ", 967),
    ("golden retrievers", 207), ("tiger", 292),
])
def test_single_class_names_plurals_and_typos(text, index):
    t = parse(text)
    assert [c.index for c in t.classes] == [index]
    assert t.classes[0].weight == 1.0


@pytest.mark.parametrize("group,size", [("dog", 118), ("dogs", 118), ("bird", 59), ("car", 11),
                                        ("fish", 16), ("cat", 5), ("snake", 17), ("monkey", 16)])
def test_groups(group, size):
    t = parse(group)
    assert len(t.classes) == size
    assert abs(sum(c.weight for c in t.classes) - 1) < 1e-9


def test_mix_weights_and_parts():
    t = parse("pizza + volcano")
    assert t.label == "pizza + volcano"
    assert t.weights() == {963: 0.5, 980: 0.5}
    assert [p[0] for p in t.parts] == ["pizza", "volcano"]
    t = parse("jellyfish + dog")
    assert abs(t.weights()[107] - 0.5) < 1e-9 and len(t.classes) == 119
    assert t.to_json()["classes"][0] == {"index": 107, "name": "jellyfish", "weight": 0.5}


@pytest.mark.parametrize("text,code", [
    ("", "bad_request"), ("   ", "bad_request"), ("a+b+c+d+e", "bad_request"), ("pizza + ", "bad_request"),
    ("x" * (MAX_TEXT + 1), "too_long"), ("qwzxv", "unknown_class"), ("\x00\x01", "bad_request"),
])
def test_garbage_is_refused_with_a_code(text, code):
    with pytest.raises(RequestError) as err:
        parse(text)
    assert err.value.code == code


@pytest.mark.parametrize("text", ["person", "people", "human", "car insurance", "mobile", "pizza oven xyz"])
def test_words_that_are_not_classes_are_not_matched_to_far_off_ones(text):
    with pytest.raises(RequestError) as err:
        parse(text)
    assert err.value.code == "unknown_class" and "is not an ImageNet class" in err.value.message


@pytest.mark.parametrize("text,index", [("jellyfsh", 107), ("vulcano", 980), ("lighthose", 437), ("schol bus", 779)])
def test_near_misses_still_match(text, index):
    assert [c.index for c in parse(text).classes] == [index]


def test_suggestions_rank_exact_and_prefix_first():
    from dreamer.classes import catalogue

    cat = catalogue()
    assert cat.suggest("dog")[0] == "dog"  # the group, not "hot dog"
    assert cat.suggest("dog").index("dog sled") < cat.suggest("dog").index("hot dog")
    assert cat.suggest("jelly")[0] == "jellyfish"
    assert cat.suggest("volc")[0] == "volcano"


def test_unknown_gets_suggestions():
    with pytest.raises(RequestError) as err:
        parse("cheese")
    assert err.value.code == "unknown_class"
    assert "cheeseburger" in err.value.suggestions
    with pytest.raises(RequestError) as err:
        parse("zzqqxx")
    assert err.value.suggestions  # never empty: popular classes when nothing is close


def test_non_string_is_bad_request():
    with pytest.raises(RequestError) as err:
        parse(None)
    assert err.value.code == "bad_request"


@pytest.mark.parametrize("text", ["person", "man", "woman", "human", "people", "child", "persn", "Women", "old man"])
def test_words_for_people_are_answered_by_meaning(text):
    with pytest.raises(RequestError) as err:
        parse(text)
    assert err.value.code == "unknown_class"
    assert "not an ImageNet class; ImageNet has no people class" in err.value.message
    assert err.value.suggestions[:3] == ["scuba diver", "bridegroom", "baseball player"]  # classes that show people
    assert "prison" not in err.value.suggestions


def test_suggestions_for_a_word_for_people_put_people_first():
    from dreamer.classes import suggest

    assert suggest("person")[0] == "scuba diver" and "prison" not in suggest("person")


@pytest.mark.parametrize("text,index", [("963", 963), ("0", 0), (" 980 ", 980), ("963 + 980", None)])
def test_a_number_is_a_class_index(text, index):
    t = parse(text)
    if index is None:
        assert t.weights() == {963: 0.5, 980: 0.5}
    else:
        assert [c.index for c in t.classes] == [index]


@pytest.mark.parametrize("text", ["1000", "-3", "2.5", "99999"])
def test_a_number_that_is_no_class_index_is_refused_as_such(text):
    with pytest.raises(RequestError) as err:
        parse(text)
    assert err.value.code == "unknown_class" and "is not a class index" in err.value.message
    assert "0 to 999" in err.value.message and err.value.suggestions == []


def test_twin_names_are_told_apart_and_each_can_be_asked_for():
    from dreamer.classes import catalogue

    cat = catalogue()
    names = [cat.display_name(i) for i in range(1000)]
    assert len(set(names)) == 1000  # no two listed alike
    assert names[836] != names[837] and names[657] != names[744]
    for i in (657, 744, 836, 837):
        assert [c.index for c in parse(names[i]).classes] == [i]
        assert parse(names[i]).label == names[i]
    assert [c.index for c in parse("shades").classes] == [837]


def test_a_name_two_classes_share_offers_the_other_one():
    from dreamer.classes import twins

    assert twins("missile") == ["missile (projectile)"]
    assert twins("Sunglass") == ["sunglasses (dark glasses, shades)"]
    assert twins("pizza + missiles") == ["pizza + missile (projectile)"]
    assert twins("missile (rocket)") == [] and twins("volcano") == [] and twins("qqxxzz") == []
