"""The retrieval key: values masked by their names, names appended."""

from plancache.keys import exemplar_key, retrieval_key


def test_values_are_masked_so_different_values_share_a_key():
    """Two requests that differ only in the value give the same key."""
    a = retrieval_key("cancel order 123 please", {"order_id": "123"})
    b = retrieval_key("cancel order 456 please", {"order_id": "456"})
    assert a == b == "cancel order {order_id} please (order_id)"


def test_exemplar_placeholders_meet_request_masks():
    """An exemplar written with {{name}} has the key of a request carrying that value."""
    assert exemplar_key("cancel order {{order_id}} please") == retrieval_key(
        "cancel order 99 please", {"order_id": 99}
    )


def test_longer_values_are_masked_first():
    """A value inside a longer one does not split it."""
    key = retrieval_key("move 12 items to order 1234", {"order_id": "1234", "count": 12})
    assert key == "move {count} items to order {order_id} (count, order_id)"


def test_matching_ignores_case_and_numbers_render_plainly():
    """Case does not matter; 3.0 reads 3; a name without a value in the text is still appended."""
    assert retrieval_key("Account PRO please", {"account_type": "pro"}) == (
        "Account {account_type} please (account_type)"
    )
    assert retrieval_key("need 3 seats", {"seats": 3.0, "city": "Oslo"}) == (
        "need {seats} seats (city, seats)"
    )


def test_no_parameters_leaves_text_normalised():
    """Whitespace is folded and nothing is appended."""
    assert retrieval_key("  where is   my parcel ", {}) == "where is my parcel"


def test_a_value_is_masked_as_a_whole_token_only():
    """A value inside a longer token stays: order_id=1 leaves "12" and "A1" alone."""
    key = retrieval_key("cancel purchase 12, item A1, order 1", {"order_id": 1})
    assert key == "cancel purchase 12, item A1, order {order_id} (order_id)"
