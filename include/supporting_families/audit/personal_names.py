"""Given names and surnames the ledger's guard refuses inside a code, in any case: ``john_smith``,
``jane.officer``, ``sarah_k``.

Written for this project: common given names in England and Wales across the traditions of a London
borough, and the commonest surnames. Names that are also English words a code could hold (``will``,
``mark``, ``grace``, ``amber``, ``may``, ``max``) are left out, and so are names spelt only with the hex
letters a-f (``ada``, ``dee``), which a digest run into a code can spell by chance. Staff are recorded by a
pseudonymous id (``supporting_families.audit.actors``), so no platform value needs a personal name.
"""

from __future__ import annotations

from typing import Final

_GIVEN_NAMES_TEXT: Final = """
olivia amelia isla ava emily sophia sophie mia ella evie isabella charlotte freya jessica florence alice
matilda phoebe scarlett chloe lucy eleanor harriet imogen hannah emma sarah laura rebecca rachel katherine
catherine kate katie elizabeth victoria samantha jennifer jenny nicola claire helen louise joanne michelle
lisa karen amanda julie susan margaret patricia deborah jane caroline alison anne anna mary jacqueline
angela tracey kelly natalie gemma stacey danielle abigail zoe megan bethany georgia amy leah jade paige
shannon courtney kayleigh siobhan aoife niamh ciara sian bronwen rhiannon fiona kirsty heather jasmine
maisie rosie esme zara nancy elsie mabel edith beatrice penelope arabella tabitha philippa camilla
georgina lucinda maria ana sofia ines beatriz mariana catarina joana carla rita lucia carmen elena paula
marta isabel giulia francesca chiara valentina silvia camille manon juliette katarzyna agnieszka
magdalena joanna monika natalia aleksandra zuzanna ioana hanna lena ingrid astrid irene eleni klara
teresa fatima aisha ayesha amina maryam zainab khadija noor priya anjali pooja sunita nisha deepa
kavita shabana nasreen farah yasmin samira leila nadia salma hafsa sumaya hodan fartun ifrah ngozi
chioma adaeze funmilayo folake blessing precious abena akosua ama esi yaa mei ling xin yan hui jing
wei li na thi hoa lan linh maricel rosario jenny wendy gillian pauline sandra sharon tina diane janet
lorraine denise jill yvonne brenda doreen joan jean sheila

oliver george noah arthur harry leo charlie oscar jacob henry thomas freddie alfie theo william
theodore archie joshua alexander james isaac edward lucas tommy finley logan ethan mason harrison
samuel daniel benjamin joseph jake luke matthew ryan adam liam callum connor jamie lewis nathan kieran
dylan jordan aaron michael david christopher andrew paul richard robert john peter stephen steven
anthony simon ian gary martin neil stuart darren craig lee wayne kevin jason scott barry keith graham
colin brian philip nicholas jonathan timothy rupert hugo sebastian felix rory angus hamish dominic
patrick sean ciaran declan owen rhys gareth dafydd tyrone marcus delroy leroy winston clive trevor
desmond charles gabriel reuben elliot toby jasper joao pedro tiago rui miguel diogo duarte goncalo nuno
jose carlos javier alejandro pablo jorge manuel sergio alvaro marco luca matteo giuseppe alessandro
francesco lorenzo stefano pierre louis antoine julien nicolas mathieu etienne piotr tomasz krzysztof
pawel michal jakub lukasz marcin kamil mateusz andrei florin mihai dimitris nikos giorgos lars stefan
matthias bruno ricardo andre mohammed muhammad mohamed mohammad ahmed ahmad ali hassan hussain hussein
omar yusuf yousef ibrahim ismail imran tariq bilal hamza rahul amit sanjay vijay arjun ravi raj sunil
abdi abdullahi mahad hamse chinedu emeka oluwaseun tunde kwame kofi kwabena yaw wei jun hao ming
tuan minh john jonny johnny jim jimmy bobby billy tom danny mike steve dave andy tony chris nick tim
phil ricky jon jake harvey kyle bradley reece jack
"""

_SURNAMES_TEXT: Final = """
smith jones williams taylor davies evans wilson thomas johnson roberts robinson thompson walker edwards
hughes lewis harris clarke jackson turner cooper morris moore clark morgan allen phillips watson davis
parker price bennett griffiths mitchell kelly carter richardson bailey collins murphy miller richards
marshall anderson simpson ellis adams wilkinson foster chapman powell webb rogers mason holmes palmer
campbell barnes knight lloyd butler russell barker fisher stevens jenkins murray dixon pearson fletcher
walsh gibson howard andrews stewart elliott reynolds saunders payne pearce lawrence atkinson bradley
spencer dawson burton obrien watts booth perry grant wells armstrong francis rees hayes hudson newman
barrett webster gregory lowe parsons berry reid holland hawkins harding robertson newton kennedy
williamson gardner cooke bates henderson parry burgess walton burns nicholson shepherd freeman warren
nicholls hamilton byrne sutton mcdonald yates hodgson robson curtis hopkins oconnor harper coleman
watkins chambers oneill griffin hardy wheeler osborne johnston gordon doyle wallace hutchinson burke
pritchard gilbert willis higgins stevenson stephenson hammond walters hewitt nelson sullivan whitehead
cunningham quinn barnett baxter clayton jennings gallagher davidson fowler middleton lawson ferguson
hayward carroll mackenzie mclaughlin fitzgerald silva santos ferreira pereira oliveira costa rodrigues
martins fernandes goncalves gomes lopes marques alves almeida ribeiro pinto carvalho teixeira sousa
garcia fernandez gonzalez rodriguez lopez martinez sanchez perez gomez ruiz diaz moreno jimenez romero
rossi russo ferrari esposito bianchi romano colombo ricci marino greco conti dubois durand moreau
lefebvre girard nowak kowalski wisniewski wojcik kowalczyk kaminski lewandowski zielinski szymanski
wozniak dabrowski kozlowski jankowski popescu ionescu dumitru muller schmidt schneider fischer weber
papadopoulos georgiou andersson johansson nielsen jensen hansen janssen khan begum hussain ahmed ali
patel singh kaur sharma shah islam rahman miah uddin chowdhury akhtar iqbal malik mahmood qureshi
mohamud abdullahi farah warsame osman okafor okonkwo adeyemi adebayo mensah asante owusu boateng
chen wang zhang liu yang huang zhao nguyen tran pham santos reyes cruz
"""

#: Lower-case, ASCII (the guard folds accents and punctuation the same way: O'Brien is obrien).
GIVEN_NAMES: Final[frozenset[str]] = frozenset(_GIVEN_NAMES_TEXT.split())
SURNAMES: Final[frozenset[str]] = frozenset(_SURNAMES_TEXT.split())
