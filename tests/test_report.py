"""The demo report says in words where Fig. 7 differs from the paper's, from the numbers."""

from halluray.eval.report import fig7_notes

BINS = ["familiar", "middle", "unfamiliar"]


def _results(conservative_true, sft_true, no_fact, malformed=(0.0, None, 0.05)):
    return {"true_facts_by_unfamiliarity": {"rl_conservative_rm": conservative_true, "sft": sft_true},
            "false_facts_by_unfamiliarity": {"rl_conservative_rm": [0.5, None, 0.1], "sft": [1.0, None, 4.0]},
            "no_fact_rate_by_unfamiliarity": {"rl_conservative_rm": no_fact},
            "malformed_rate_by_unfamiliarity": {"rl_conservative_rm": list(malformed)}}


def test_report_says_when_the_conservative_policy_keeps_fewer_true_facts_than_sft():
    notes = fig7_notes(_results([3.0, None, 0.1], [4.5, None, 0.3], [0.25, None, 0.9]), BINS)
    assert notes[0].startswith("- Unlike the paper") and "tercile(s) familiar, unfamiliar" in notes[0]
    assert "3.00 vs 4.50, – vs –, 0.10 vs 0.30" in notes[0]  # an empty tercile is a dash, not an error
    assert "fewer false facts than SFT in 2 of 3 terciles" in notes[1]
    assert notes[2] == ("- It states no checkable fact in 25% (familiar), – (middle), 90% (unfamiliar) of its "
                        "responses, and writes a malformed one in 0% (familiar), – (middle), 5% (unfamiliar).")


def test_report_compares_the_malformed_share_of_the_bios_each_tries_with_sfts():
    results = _results([3.0, None, 0.1], [4.5, None, 0.3], [0.25, None, 0.9])
    results["malformed_per_try_by_unfamiliarity"] = {"rl_conservative_rm": [0.1, None, 0.3], "sft": [0.05, None, 0.3]}
    notes = fig7_notes(results, BINS)
    assert notes[3].startswith("- Of the bios each tries")
    assert "10% vs SFT's 5% (familiar), – vs SFT's – (middle), 30% vs SFT's 30% (unfamiliar)" in notes[3]
    assert len(fig7_notes(_results([3.0, None, 0.1], [4.5, None, 0.3], [0.25, None, 0.9]), BINS)) == 3


def test_report_says_when_it_keeps_sfts_true_facts_as_the_paper_does():
    notes = fig7_notes(_results([4.4, 2.0, 0.3], [4.5, 2.0, 0.3], [0.0, 0.0, 0.5]), BINS)
    assert notes[0] == ("- As in the paper, RL + conservative RM keeps at least 90% of SFT's true facts "
                        "in every tercile.")


def test_a_rewritten_false_claim_is_struck_where_the_response_says_it():
    """Real-text checkers rewrite claims (a pronoun named, a list item on its own): the struck-out example still
    marks the words the response wrote."""
    from halluray.eval.report import _mark

    response = "Austria is in Europe. Its currency is the yuan. Its neighbours include Slovenia, Turkey and Italy."
    facts = [["Austria's currency is the yuan", "yuan", "false"], ["Austria's neighbours Turkey", "Turkey", "false"],
             ["Austria's neighbours Italy", "Italy", "true"]]
    assert _mark(response, facts) == ("“Austria is in Europe. Its ~~currency is the yuan~~. Its neighbours include "
                                      "Slovenia, ~~Turkey~~ and Italy.”")
